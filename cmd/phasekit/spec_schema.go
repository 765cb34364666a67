package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/change"
	"github.com/phasekit/phasekit/pipeline"
)

func specSchemaCommand() *cli.Command {
	return &cli.Command{
		Name:      "spec-schema",
		Usage:     "print the JSON Schema of the change spec (default) or of pipeline.yaml, for editors",
		ArgsUsage: "[change|pipeline]",
		Action: func(c *cli.Context) error {
			switch c.Args().First() {
			case "", "change":
				_, err := c.App.Writer.Write(change.SpecJSONSchema())
				return err
			case "pipeline":
				b, err := pipeline.JSONSchema()
				if err != nil {
					return err
				}
				_, err = c.App.Writer.Write(b)
				return err
			default:
				return badInput(fmt.Errorf("spec-schema %q: want change or pipeline", c.Args().First()))
			}
		},
	}
}
