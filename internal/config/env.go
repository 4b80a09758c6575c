package config

import (
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"time"
)

// EnvPrefix starts every environment override. The rest of the name is the
// YAML path in upper case joined by underscores, e.g. LOOKOUT_CLICKHOUSE_ADDR
// or LOOKOUT_DRIFT_MIN_SAMPLES. Lists are comma-separated.
const EnvPrefix = "LOOKOUT_"

func applyEnv(c *Config, env []string) error {
	vars := make(map[string]string)
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if ok && strings.HasPrefix(k, EnvPrefix) {
			vars[k] = v
		}
	}
	if len(vars) == 0 {
		return nil
	}
	return walkEnv(reflect.ValueOf(c).Elem(), strings.TrimSuffix(EnvPrefix, "_"), vars)
}

// EnvNames lists every override variable, for the configuration reference.
func EnvNames() []string {
	var names []string
	var walk func(t reflect.Type, prefix string)
	walk = func(t reflect.Type, prefix string) {
		for i := range t.NumField() {
			f := t.Field(i)
			name := prefix + "_" + strings.ToUpper(yamlName(f))
			if f.Type.Kind() == reflect.Struct && f.Type != reflect.TypeFor[time.Time]() {
				walk(f.Type, name)
				continue
			}
			names = append(names, name)
		}
	}
	walk(reflect.TypeFor[Config](), strings.TrimSuffix(EnvPrefix, "_"))
	return names
}

func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	if name == "" {
		name = strings.ToLower(f.Name)
	}
	return name
}

func walkEnv(v reflect.Value, prefix string, vars map[string]string) error {
	t := v.Type()
	for i := range t.NumField() {
		f := t.Field(i)
		name := prefix + "_" + strings.ToUpper(yamlName(f))
		fv := v.Field(i)
		if f.Type.Kind() == reflect.Struct {
			if err := walkEnv(fv, name, vars); err != nil {
				return err
			}
			continue
		}
		raw, ok := vars[name]
		if !ok {
			continue
		}
		if err := setFromString(fv, raw); err != nil {
			// Never echo the value: it may be a secret.
			return fmt.Errorf("environment %s: %w", name, err)
		}
	}
	return nil
}

func setFromString(v reflect.Value, raw string) error {
	if v.Type() == reflect.TypeFor[time.Duration]() {
		d, err := time.ParseDuration(raw)
		if err != nil {
			return fmt.Errorf("want a duration like 30s or 5m")
		}
		v.SetInt(int64(d))
		return nil
	}
	switch v.Kind() {
	case reflect.String:
		v.SetString(raw)
	case reflect.Bool:
		b, err := strconv.ParseBool(raw)
		if err != nil {
			return fmt.Errorf("want true or false")
		}
		v.SetBool(b)
	case reflect.Int, reflect.Int64, reflect.Int32:
		n, err := strconv.ParseInt(raw, 10, 64)
		if err != nil {
			return fmt.Errorf("want an integer")
		}
		v.SetInt(n)
	case reflect.Float64:
		x, err := strconv.ParseFloat(raw, 64)
		if err != nil {
			return fmt.Errorf("want a number")
		}
		v.SetFloat(x)
	case reflect.Slice:
		if v.Type().Elem().Kind() != reflect.String {
			return fmt.Errorf("unsupported list type %s", v.Type())
		}
		var items []string
		for _, s := range strings.Split(raw, ",") {
			if s = strings.TrimSpace(s); s != "" {
				items = append(items, s)
			}
		}
		v.Set(reflect.ValueOf(items))
	default:
		return fmt.Errorf("unsupported type %s", v.Type())
	}
	return nil
}
