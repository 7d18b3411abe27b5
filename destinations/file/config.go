package file

import "errors"

// Config is the `file:` block of a destination.
type Config struct {
	// Path of the JSON-lines file; relative paths are resolved against the
	// config file's directory by the config loader.
	Path string `yaml:"path"`
}

// Validate checks the block; the message starts with the YAML key.
func (c Config) Validate() error {
	if c.Path == "" {
		return errors.New("path: is required")
	}
	return nil
}
