package main

import (
	"io"
	"os"
	"regexp"
	"strings"
	"testing"

	"github.com/spf13/cobra"
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

// flagRef matches a --flag named in prose or an example ("--tls-*"
// gives "tls-", a prefix).
var flagRef = regexp.MustCompile(`(^|[^A-Za-z0-9_-])--([a-z][a-z0-9-]*)`)

// otherTool marks a README line about another program (the build, the
// fault tests, the benchmarks, the Python checks), whose flags are its own.
var otherTool = regexp.MustCompile(`tools/|mypy`)

// TestREADMEFlagsExist keeps the two READMEs honest: every --flag they
// name is a flag of some proglog command ("--tls-*": of one starting so).
func TestREADMEFlagsExist(t *testing.T) {
	defined := map[string]bool{}
	var walk func(*cobra.Command)
	walk = func(c *cobra.Command) {
		c.Flags().VisitAll(func(f *pflag.Flag) { defined[f.Name] = true })
		for _, sub := range c.Commands() {
			walk(sub)
		}
	}
	walk(newRootCmd(io.Discard, io.Discard))
	exists := func(name string) bool {
		if !strings.HasSuffix(name, "-") {
			return defined[name]
		}
		for d := range defined {
			if strings.HasPrefix(d, name) {
				return true
			}
		}
		return false
	}
	// The top-level README is the repository's (a data dependency in
	// Bazel: //:README.md).
	for _, file := range []string{"README.md", "../../../README.md"} {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(b), "\n") {
			if otherTool.MatchString(line) {
				continue
			}
			for _, m := range flagRef.FindAllStringSubmatch(line, -1) {
				if !exists(m[2]) {
					t.Errorf("%s:%d names --%s, which no proglog command has", file, i+1, m[2])
				}
			}
		}
	}
}
