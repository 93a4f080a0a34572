// Package config embeds the shipped KubeSchedulerConfiguration files so the
// simulator and the tests run exactly what users deploy.
package config

import _ "embed"

// SecondScheduler runs Mosaic as a second scheduler named mosaic-scheduler.
//
//go:embed mosaic-scheduler.yaml
var SecondScheduler []byte

// DefaultScheduler replaces default-scheduler, Mosaic added to its plugins.
//
//go:embed default-scheduler.yaml
var DefaultScheduler []byte
