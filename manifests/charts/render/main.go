// Command render writes the plain manifests of manifests/ from the chart,
// and copies the Grafana dashboard into the chart (`make manifests`).
package main

import (
	"flag"
	"fmt"
	"os"
	"path/filepath"

	"github.com/mosaic-gpu/mosaic/manifests/charts"
)

func main() {
	dir := flag.String("o", "manifests", "the manifests directory")
	flag.Parse()
	files, err := charts.Plain()
	if err != nil {
		fmt.Fprintln(os.Stderr, "rendering the chart:", err)
		os.Exit(1)
	}
	dash, err := os.ReadFile(filepath.Join(*dir, charts.Dashboard))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	if err := os.WriteFile(filepath.Join(*dir, "charts", charts.ChartDashboard), dash, 0o644); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	for name, text := range files {
		p := filepath.Join(*dir, name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		if err := os.WriteFile(p, []byte(text), 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
}
