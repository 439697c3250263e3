package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

// settingRow matches a row of the settings table in README.md.
var settingRow = regexp.MustCompile("^\\| `--([a-z0-9-]+)` \\| `([A-Z0-9_]+)` \\|")

// TestServeFlagsDocumented keeps README.md's settings table and serve's
// flags in step: a row per flag, a flag per row, the right variable name.
func TestServeFlagsDocumented(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	rows := map[string]string{}
	for _, line := range strings.Split(string(readme), "\n") {
		if m := settingRow.FindStringSubmatch(line); m != nil {
			rows[m[1]] = m[2]
		}
	}
	cmd := newServeCmd(io.Discard)
	flags := map[string]bool{}
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Hidden || f.Deprecated != "" {
			return
		}
		flags[f.Name] = true
		env, ok := rows[f.Name]
		switch {
		case !ok:
			t.Errorf("--%s has no row in README.md", f.Name)
		case env != envPrefix+strings.ToUpper(strings.ReplaceAll(f.Name, "-", "_")):
			t.Errorf("--%s is documented with the variable %s", f.Name, env)
		}
	})
	for name := range rows {
		if !flags[name] {
			t.Errorf("README.md documents --%s, which serve does not have", name)
		}
	}
}
