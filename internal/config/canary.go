package config

// Canary configures the canary router and the rollout controller.
type Canary struct{}

func defaultCanary() Canary { return Canary{} }

func (c *Canary) validate() []error { return nil }
