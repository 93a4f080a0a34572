{{/*
Labels every object carries; uninstall and the tests find Mosaic's objects
by app.kubernetes.io/part-of.
*/}}
{{- define "mosaic.labels" -}}
app.kubernetes.io/part-of: mosaic
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
{{- end }}

{{- define "mosaic.image" -}}
{{ .root.Values.image.registry }}/mosaic-{{ .name }}:{{ .root.Values.image.tag }}
{{- end }}

{{/* The user a service account of the release authenticates as. */}}
{{- define "mosaic.saUser" -}}
system:serviceaccount:{{ .root.Release.Namespace }}:{{ .name }}
{{- end }}

{{/*
mosaic.certManager: "true" when the webhook's certificate comes from
cert-manager.
*/}}
{{- define "mosaic.certManager" -}}
{{- $v := toString .Values.webhook.certificates.certManager -}}
{{- if eq $v "auto" -}}
{{- .Capabilities.APIVersions.Has "cert-manager.io/v1" -}}
{{- else if or (eq $v "true") (eq $v "false") -}}
{{- $v -}}
{{- else -}}
{{- fail (printf "webhook.certificates.certManager: %q, want auto, true or false" $v) -}}
{{- end -}}
{{- end }}

{{/* The scheduler profile's name. */}}
{{- define "mosaic.profileName" -}}
{{- if .Values.scheduler.replaceDefault -}}default-scheduler{{- else -}}{{ .Values.schedulerName }}{{- end -}}
{{- end }}

{{/*
mosaic.validate stops the render on values Mosaic cannot honour, naming
the key.
*/}}
{{- define "mosaic.validate" -}}
{{- range $key, $want := dict "resourceName" "nvidia.com/gpu" "resourceMem" "nvidia.com/gpumem" "resourceMemPercentage" "nvidia.com/gpumem-percentage" "resourceCores" "nvidia.com/gpucores" }}
{{- if ne (index $.Values $key) $want }}
{{- fail (printf "%s: %q, but Mosaic's resource names are HAMi's defaults; %s must be %q" $key (index $.Values $key) $key $want) }}
{{- end }}
{{- end }}
{{- range $key, $v := dict "scheduler.defaultSchedulerPolicy.nodeSchedulerPolicy" .Values.scheduler.defaultSchedulerPolicy.nodeSchedulerPolicy "scheduler.defaultSchedulerPolicy.gpuSchedulerPolicy" .Values.scheduler.defaultSchedulerPolicy.gpuSchedulerPolicy }}
{{- if not (has $v (list "binpack" "spread")) }}
{{- fail (printf "%s: %q, want binpack or spread" $key $v) }}
{{- end }}
{{- end }}
{{- if not (has .Values.scheduler.numaPolicy (list "none" "best-effort" "single-numa")) }}
{{- fail (printf "scheduler.numaPolicy: %q, want none, best-effort or single-numa" .Values.scheduler.numaPolicy) }}
{{- end }}
{{- $split := .Values.devicePlugin.deviceSplitCount }}
{{- if or (lt (float64 $split) 1.0) (gt (float64 $split) 1024.0) (ne (float64 (int64 $split)) (float64 $split)) }}
{{- fail (printf "devicePlugin.deviceSplitCount: %v, want an integer in 1..1024" $split) }}
{{- end }}
{{- range $key, $v := dict "devicePlugin.deviceMemoryScaling" .Values.devicePlugin.deviceMemoryScaling "devicePlugin.deviceCoreScaling" .Values.devicePlugin.deviceCoreScaling }}
{{- if or (lt (float64 $v) 0.01) (gt (float64 $v) 100.0) }}
{{- fail (printf "%s: %v, want 0.01..100" $key $v) }}
{{- end }}
{{- end }}
{{- if not (has .Values.webhook.overridePolicy (list "deny" "warn")) }}
{{- fail (printf "webhook.overridePolicy: %q, want deny or warn" .Values.webhook.overridePolicy) }}
{{- end }}
{{- end }}

{{/*
mosaic.schedulerConfig: the scheduler's KubeSchedulerConfiguration, which
the webhook reads too; its hash restarts both when it changes.
*/}}
{{- define "mosaic.schedulerConfig" -}}
{{- $ns := .Release.Namespace }}
{{- $profile := include "mosaic.profileName" . }}
{{- $lease := ternary "kube-scheduler" "mosaic-scheduler" .Values.scheduler.replaceDefault }}
apiVersion: kubescheduler.config.k8s.io/v1
kind: KubeSchedulerConfiguration
leaderElection:
  leaderElect: true
  resourceName: {{ $lease }}
  resourceNamespace: {{ $ns }}
  leaseDuration: {{ .Values.scheduler.leaderElection.leaseDuration }}
  renewDeadline: {{ .Values.scheduler.leaderElection.renewDeadline }}
  retryPeriod: {{ .Values.scheduler.leaderElection.retryPeriod }}
profiles:
- schedulerName: {{ $profile }}
  plugins:
    # NodeResourcesFit with the resources it ignores dropped once per pod
    # rather than checked on every node (docs/performance.md).
    multiPoint:
      enabled: [{name: MosaicNodeResourcesFit, weight: 1}, {name: Mosaic}]
      disabled: [{name: NodeResourcesFit}]
    # Mosaic's Filter right after those whose refusals preemption cannot
    # lift, the others in the stock order (docs/performance.md).
    filter:
      enabled: [{name: NodeName}, {name: NodeUnschedulable}, {name: TaintToleration}, {name: NodeAffinity}, {name: Mosaic}, {name: NodePorts}, {name: MosaicNodeResourcesFit}]
    score: {enabled: [{name: Mosaic, weight: 10}]}
    bind:
      disabled: [{name: "*"}]
      enabled: [{name: Mosaic}, {name: DefaultBinder}]
  pluginConfig:
  - name: Mosaic
    args:
      nodePolicy: {{ .Values.scheduler.defaultSchedulerPolicy.nodeSchedulerPolicy }}
      gpuPolicy: {{ .Values.scheduler.defaultSchedulerPolicy.gpuSchedulerPolicy }}
      numaPolicy: {{ .Values.scheduler.numaPolicy }}
      deviceSplitCount: {{ .Values.devicePlugin.deviceSplitCount }}
      deviceMemoryScaling: {{ .Values.devicePlugin.deviceMemoryScaling }}
      deviceCoreScaling: {{ .Values.devicePlugin.deviceCoreScaling }}
      {{- with .Values.scheduler.defaultMem }}
      defaultMemoryMiB: {{ . }}
      {{- end }}
      {{- with .Values.scheduler.defaultCores }}
      defaultCores: {{ . }}
      {{- end }}
      {{- with .Values.scheduler.ascendModels }}
      ascendModels: {{- toYaml . | nindent 6 }}
      {{- end }}
  - name: MosaicNodeResourcesFit
    args:
      scoringStrategy:
        type: LeastAllocated
        resources: [{name: cpu, weight: 1}, {name: memory, weight: 1}]
      {{- $ignored := list "nvidia.com/gpumem" "nvidia.com/gpumem-percentage" "nvidia.com/gpucores" "huawei.com/Ascend910A-memory" "huawei.com/Ascend910B-memory" "huawei.com/Ascend910B3-memory" "huawei.com/Ascend910B4-memory" "huawei.com/Ascend310P-memory" }}
      {{- range .Values.scheduler.ascendModels }}
      {{- $ignored = append $ignored (printf "huawei.com/%s-memory" .name) | uniq }}
      {{- end }}
      ignoredResources: [{{ join ", " $ignored }}]
{{- end }}
