// Command mosaic-inventory prints the inventory the node agent would
// publish for this machine: the JSON of the mosaic.io/devices annotation.
//
//	mosaic-inventory --backend nvidia|ascend|fake [--fake-file F] [--pretty]
//
// On a machine without the backend's driver it prints an empty inventory,
// says why on stderr and exits 0, as the agent then runs with no cards.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/mosaic-gpu/mosaic/pkg/device"
	"github.com/mosaic-gpu/mosaic/pkg/deviceplugin/discovery"
)

func main() {
	if err := run(context.Background(), os.Args[1:], os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "mosaic-inventory:", err)
		os.Exit(1)
	}
}

type options struct {
	backend, fakeFile, node, library, sysfs string
	pretty                                  bool
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var o options
	fs := flag.NewFlagSet("mosaic-inventory", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.StringVar(&o.backend, "backend", "nvidia", "discovery backend: nvidia, ascend or fake")
	fs.StringVar(&o.fakeFile, "fake-file", "", "card specs for the fake backend (a YAML or JSON list)")
	fs.StringVar(&o.node, "node", "", "node name the fake backend derives UUIDs from (default: the host name)")
	fs.StringVar(&o.library, "library", "", "driver library (libnvidia-ml.so.1, libdcmi.so); empty searches the usual places")
	fs.StringVar(&o.sysfs, "sysfs", "", "sysfs mount point, for NUMA affinity (default /sys)")
	fs.BoolVar(&o.pretty, "pretty", false, "indent the JSON")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() > 0 {
		return fmt.Errorf("unexpected arguments %q", fs.Args())
	}

	devs := []device.Device{}
	backend, closeBackend, err := open(o)
	switch {
	case errors.Is(err, discovery.ErrNoDriver):
		fmt.Fprintf(stderr, "mosaic-inventory: no %s driver on this machine, listing no devices: %v\n", o.backend, err)
	case err != nil:
		return err
	default:
		defer closeBackend()
		found, err := backend.Devices(ctx)
		if err != nil {
			return fmt.Errorf("discovering devices with %s: %w", backend.Name(), err)
		}
		devs = append(devs, found...)
	}

	// With the sharing an agent without flags or ConfigMap publishes.
	s, err := device.EncodeInventory(&device.Inventory{Devices: devs, Config: device.DefaultNodeConfig()})
	if err != nil {
		return err
	}
	out := []byte(s)
	if o.pretty {
		var buf bytes.Buffer
		if err := json.Indent(&buf, out, "", "  "); err != nil {
			return err
		}
		out = buf.Bytes()
	}
	_, err = fmt.Fprintf(stdout, "%s\n", out)
	return err
}

// open starts the chosen backend and returns how to close it.
func open(o options) (discovery.Backend, func() error, error) {
	switch o.backend {
	case "nvidia":
		n, err := discovery.NewNVIDIA(discovery.NVIDIAOptions{LibraryPath: o.library, SysfsRoot: o.sysfs})
		if err != nil {
			return nil, nil, err
		}
		return n, n.Close, nil
	case "ascend":
		a, err := discovery.NewAscend(discovery.AscendOptions{LibraryPath: o.library, SysfsRoot: o.sysfs})
		if err != nil {
			return nil, nil, err
		}
		return a, a.Close, nil
	case "fake":
		if o.fakeFile == "" {
			return nil, nil, errors.New("--backend fake needs --fake-file")
		}
		node := o.node
		if node == "" {
			var err error
			if node, err = os.Hostname(); err != nil {
				return nil, nil, fmt.Errorf("naming the node: %w", err)
			}
		}
		f, err := discovery.LoadFake(node, o.fakeFile)
		if err != nil {
			return nil, nil, err
		}
		return f, func() error { return nil }, nil
	}
	return nil, nil, fmt.Errorf("--backend %q: want nvidia, ascend or fake", o.backend)
}
