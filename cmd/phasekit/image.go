package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/urfave/cli/v2"

	"github.com/phasekit/phasekit/verify"
)

func imageCommand() *cli.Command {
	return &cli.Command{
		Name:  "image",
		Usage: "manage the PostgreSQL image of the docker sandbox",
		Subcommands: []*cli.Command{
			{
				Name: "build",
				Usage: "build a PostgreSQL 15 image from Debian packages (debootstrap, as root, about two minutes), " +
					"for machines that reach a Debian mirror but no container registry; a present tag is kept",
				Flags: []cli.Flag{
					&cli.StringFlag{Name: "tag", Value: verify.LocalImage, Usage: "name of the image to build"},
					&cli.StringFlag{Name: "mirror", Usage: "Debian mirror (default: the first in the machine's apt sources, else http://deb.debian.org/debian)"},
					&cli.BoolFlag{Name: "force", Usage: "rebuild even if the tag is present"},
				},
				Action: func(c *cli.Context) error {
					if c.NArg() > 0 {
						return badInput(fmt.Errorf("image build takes no arguments, got %q: use --tag", c.Args().First()))
					}
					format := c.String("format")
					if format != "text" && format != "json" {
						return badInput(fmt.Errorf("--format %q: image build writes text or json", format))
					}
					// Ctrl-C stops debootstrap and still unmounts and removes its directory.
					ctx, stop := signal.NotifyContext(c.Context, os.Interrupt, syscall.SIGTERM)
					defer stop()
					tag := c.String("tag")
					built, err := verify.BuildImage(ctx, verify.BuildImageOptions{
						Tag:    tag,
						Mirror: c.String("mirror"),
						Force:  c.Bool("force"),
						Log:    c.App.ErrWriter,
					})
					if err != nil {
						if errors.Is(err, verify.ErrBuildInput) {
							return badInput(err)
						}
						return err
					}
					if format == "json" {
						return json.NewEncoder(c.App.Writer).Encode(struct {
							Image string `json:"image"`
							Built bool   `json:"built"`
						}{tag, built})
					}
					if built {
						fmt.Fprintf(c.App.Writer, "built image %s\n", tag)
					} else {
						fmt.Fprintf(c.App.Writer, "image %s already present (cached); --force rebuilds it\n", tag)
					}
					return nil
				},
			},
		},
	}
}
