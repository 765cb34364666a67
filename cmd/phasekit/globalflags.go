package main

import (
	"strings"

	"github.com/urfave/cli/v2"
)

// hoistGlobalFlags lets the global flags (--dsn, --format, --log-level) be
// typed after the subcommand too, as kubectl and gh allow: urfave/cli only
// reads a command's flags after its name, so a global flag found there is
// moved before the first command name. A command that defines a flag of the
// same name (report --format, gate contract --dsn) keeps it. Arguments after
// a "--" are never touched.
func hoistGlobalFlags(app *cli.App, args []string) []string {
	if len(args) < 2 {
		return args
	}
	global := map[string]cli.Flag{}
	for _, f := range app.Flags {
		for _, n := range f.Names() {
			global[n] = f
		}
	}
	// The global flags already before the command.
	i := 1
	for i < len(args) && strings.HasPrefix(args[i], "-") && args[i] != "--" {
		name, hasValue := flagName(args[i])
		i++
		if f, ok := global[name]; ok && takesValue(f) && !hasValue && i < len(args) {
			i++
		}
	}
	if i >= len(args) || args[i] == "--" {
		return args
	}
	head := append([]string{}, args[:i]...)
	var moved, rest []string
	cmds := app.Commands
	var flags []cli.Flag // the flags of the command path so far
	for j := i; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			rest = append(rest, args[j:]...)
			break
		}
		if !strings.HasPrefix(a, "-") || a == "-" {
			if c := findCommand(cmds, a); c != nil {
				cmds = c.Subcommands
				flags = append(flags, c.Flags...)
			}
			rest = append(rest, a)
			continue
		}
		name, hasValue := flagName(a)
		own := findFlag(flags, name)
		if g, ok := global[name]; ok && own == nil {
			moved = append(moved, a)
			if takesValue(g) && !hasValue && j+1 < len(args) {
				j++
				moved = append(moved, args[j])
			}
			continue
		}
		rest = append(rest, a)
		if own != nil && takesValue(own) && !hasValue && j+1 < len(args) {
			j++
			rest = append(rest, args[j])
		}
	}
	return append(append(head, moved...), rest...)
}

// flagName reads "--name", "-name" or "--name=value".
func flagName(arg string) (name string, hasValue bool) {
	name = strings.TrimLeft(arg, "-")
	if k, _, ok := strings.Cut(name, "="); ok {
		return k, true
	}
	return name, false
}

func takesValue(f cli.Flag) bool {
	_, isBool := f.(*cli.BoolFlag)
	return !isBool
}

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.Name == name {
			return c
		}
		for _, a := range c.Aliases {
			if a == name {
				return c
			}
		}
	}
	return nil
}

func findFlag(flags []cli.Flag, name string) cli.Flag {
	for _, f := range flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}
