// Command kubectl-mosaic is Mosaic's kubectl plugin. Installed on the PATH
// it runs as `kubectl mosaic ...`.
//
//	kubectl mosaic doctor [--node N] [-o table|json] [--kubeconfig F] [--context C]
//
// doctor lists, per node, the usual reasons GPU sharing does not work there
// and how to fix each (pkg/doctor). It exits 0 when it finds nothing, 1
// when it finds something, 2 when it cannot check.
package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"text/tabwriter"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/mosaic-gpu/mosaic/pkg/doctor"
)

func main() {
	os.Exit(run(context.Background(), os.Args[1:], os.Stdout, os.Stderr))
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "doctor" {
		fmt.Fprintln(stderr, "usage: kubectl mosaic doctor [--node N] [-o table|json] [--kubeconfig F] [--context C]")
		return 2
	}
	fs := flag.NewFlagSet("kubectl mosaic doctor", flag.ContinueOnError)
	fs.SetOutput(stderr)
	kubeconfig := fs.String("kubeconfig", "", "kubeconfig file (default: $KUBECONFIG, then ~/.kube/config, then in-cluster)")
	kubeContext := fs.String("context", "", "kubeconfig context to use")
	node := fs.String("node", "", "check this node only")
	output := fs.String("o", "table", "output: table or json")
	if err := fs.Parse(args[1:]); err != nil {
		return 2
	}
	if fs.NArg() > 0 || (*output != "table" && *output != "json") {
		fmt.Fprintf(stderr, "kubectl mosaic doctor: -o must be table or json, and no arguments follow the flags (got %q)\n", fs.Args())
		return 2
	}
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = *kubeconfig
	cfg, err := clientcmd.NewNonInteractiveDeferredLoadingClientConfig(rules, &clientcmd.ConfigOverrides{CurrentContext: *kubeContext}).ClientConfig()
	if err != nil {
		fmt.Fprintln(stderr, "kubectl mosaic doctor:", err)
		return 2
	}
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "kubectl mosaic doctor:", err)
		return 2
	}
	findings, err := doctor.Run(ctx, cs, doctor.Options{Node: *node})
	if err != nil {
		fmt.Fprintln(stderr, "kubectl mosaic doctor:", err)
		return 2
	}
	if err := write(stdout, *output, findings); err != nil {
		fmt.Fprintln(stderr, "kubectl mosaic doctor:", err)
		return 2
	}
	if len(findings) > 0 {
		return 1
	}
	return 0
}

func write(w io.Writer, output string, findings []doctor.Finding) error {
	if output == "json" {
		if findings == nil {
			findings = []doctor.Finding{}
		}
		e := json.NewEncoder(w)
		e.SetIndent("", "  ")
		return e.Encode(findings)
	}
	if len(findings) == 0 {
		_, err := fmt.Fprintln(w, "No problems found.")
		return err
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NODE\tPOD\tCHECK\tPROBLEM")
	for _, f := range findings {
		pod := f.Pod
		if pod == "" {
			pod = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", f.Node, pod, f.Check, f.Problem)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w, "\nHow to fix:")
	seen := map[string]bool{}
	for _, f := range findings {
		key := string(f.Check) + f.Fix
		if seen[key] {
			continue
		}
		seen[key] = true
		if _, err := fmt.Fprintf(w, "- %s: %s\n", f.Check, f.Fix); err != nil {
			return err
		}
	}
	return nil
}
