// Package config holds the typed arguments of Mosaic's scheduler plugin, as
// written under pluginConfig in a KubeSchedulerConfiguration.
package config
