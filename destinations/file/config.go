package file

import "github.com/rcrouter/rcrouter/destinations"

// Config is the `file:` block of a destination.
type Config struct {
	// Path of the JSON-lines file; relative paths are resolved against the
	// config file's directory by the config loader (ResolvePaths).
	Path string `yaml:"path"`
}

var _ destinations.PathBlock = (*Config)(nil)

// Validate checks the block.
func (c *Config) Validate() destinations.Problems {
	var p destinations.Problems
	if c.Path == "" {
		p.Add("path", "required")
	}
	return p
}

// ResolvePaths makes Path absolute against the config file's directory.
func (c *Config) ResolvePaths(resolve func(string) string) { c.Path = resolve(c.Path) }

// Type is the `file:` destination type.
func Type() destinations.Type {
	return destinations.Type{
		Name:   "file",
		Config: func() destinations.Block { return &Config{} },
		New: func(name string, b destinations.Block, o destinations.Options) (destinations.Destination, error) {
			return New(name, *b.(*Config), o)
		},
	}
}
