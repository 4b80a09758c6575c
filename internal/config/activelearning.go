package config

// ActiveLearning configures selection and the labelling queue.
type ActiveLearning struct{}

func defaultActiveLearning() ActiveLearning { return ActiveLearning{} }

func (a *ActiveLearning) validate() []error { return nil }
