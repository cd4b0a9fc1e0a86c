{{/* The Dagster instance (dagster.yaml) every Dagster component and every run pod loads. */}}

{{- define "aggregator.dagsterHome" -}}/opt/dagster/dagster_home{{- end }}

{{/* Spec files from pipelines.specs, as `<name>.yaml`; names are checked so a key cannot escape the directory. */}}
{{- define "aggregator.specFiles" -}}
{{- range $name, $text := .Values.pipelines.specs }}
{{- if not (regexMatch "^[a-z0-9][a-z0-9_-]*$" $name) }}
{{- fail (printf "pipelines.specs.%s: a spec name is lower-case letters, digits, '_' and '-' (it becomes <name>.yaml)" $name) }}
{{- end }}
{{ $name }}.yaml: {{ $text | quote }}
{{- end }}
{{- end }}

{{/* The environment pipeline code gets in the code server and in run pods, as NAME=value lines. No
AGGREGATOR_PIPELINES: they read the spec store (secret `specs`), and a run loads the revision it was launched
with whichever pod runs it. */}}
{{- define "aggregator.userCodeEnv" -}}
- AGGREGATOR_HOME=/tmp/aggregator
{{- include "aggregator.uploadsEnv" . }}
{{- end }}

{{/* Where uploads live (uploads.url), as NAME=value lines: the proxy, the code server, run pods, the worker. */}}
{{- define "aggregator.uploadsEnv" -}}
{{- with .Values.uploads.url }}
{{- if not (regexMatch "^s3://[a-z0-9][a-z0-9.-]*[a-z0-9](/[A-Za-z0-9_./-]*)?$" .) }}
{{- fail (printf "uploads.url must be an s3://bucket/prefix URL (not shown: it may hold credentials; they go in secret %s, never the URL)" $.Values.secrets.uploads) }}
{{- end }}
- AGGREGATOR_UPLOADS_URL={{ . }}
{{- with $.Values.uploads.s3.endpointUrl }}
- AGGREGATOR_UPLOADS_S3_ENDPOINT_URL={{ . }}
{{- end }}
{{- with $.Values.uploads.s3.region }}
- AGGREGATOR_UPLOADS_S3_REGION={{ . }}
{{- end }}
{{- end }}
{{- end }}

{{/* The spec store's read-only URL (secret `specs`) as a container env entry. */}}
{{- define "aggregator.specStoreEnv" -}}
- name: AGGREGATOR_SPECS_DB_URL
  valueFrom:
    secretKeyRef:
      name: {{ .Values.secrets.specs }}
      key: AGGREGATOR_SPECS_DB_URL
{{- end }}

{{/*
The spec files in the apply Job, one subPath mount per file: a whole-ConfigMap mount also holds the kubelet's
`..data` and `..<timestamp>` directories, and the spec loader reads every `*.yaml` below the directory, so each
spec would be validated twice.
*/}}
{{- define "aggregator.specMounts" -}}
{{- range $name, $_ := .Values.pipelines.specs }}
- name: pipelines
  mountPath: {{ $.Values.pipelines.mountPath }}/{{ $name }}.yaml
  subPath: {{ $name }}.yaml
  readOnly: true
{{- end }}
{{- end }}

{{- define "aggregator.dagsterInstance" -}}
{{- $r := .Values.runs -}}
storage:
  postgres:
    postgres_url:
      env: DAGSTER_PG_URL

run_launcher:
  module: dagster_k8s
  class: K8sRunLauncher
  config:
    # Run pods mount this ConfigMap as DAGSTER_HOME/dagster.yaml.
    instance_config_map: aggregator-dagster-instance
    dagster_home: {{ include "aggregator.dagsterHome" . }}
    # An account bound to no Role, and its token is not mounted (pod_spec_config below): pipeline code
    # cannot act on the cluster.
    service_account_name: aggregator-user-code
    job_namespace: {{ .Release.Namespace }}
    load_incluster_config: true
    # The image comes from the code location (the code server's DAGSTER_CURRENT_IMAGE): the chart's image.
    image_pull_policy: {{ .Values.image.pullPolicy }}
    env_secrets:
      - {{ .Values.secrets.dagster }}
      - {{ .Values.secrets.runs }}
      - {{ .Values.secrets.computeLogs }}
      # AGGREGATOR_SPECS_DB_URL, read-only: the pod loads the spec revision its run was launched with.
      - {{ .Values.secrets.specs }}
      {{- if .Values.uploads.url }}
      - {{ .Values.secrets.uploads }}
      {{- end }}
    env_vars:
      {{- include "aggregator.userCodeEnv" . | nindent 6 }}
    resources:
      {{- toYaml $r.resources | nindent 6 }}
    security_context:
      runAsNonRoot: true
      runAsUser: 10001
      runAsGroup: 10001
      allowPrivilegeEscalation: false
      readOnlyRootFilesystem: true
      capabilities:
        drop: [ALL]
    labels:
      app.kubernetes.io/part-of: data-aggregator
    fail_pod_on_run_failure: true
    # What a `dagster-k8s/config` run tag or a code location may set; anything else fails the launch.
    only_allow_user_defined_k8s_config_fields:
      {{- toYaml $r.allowedTagFields | nindent 6 }}
    run_k8s_config:
      # The root filesystem is read-only; a run writes to /tmp and DAGSTER_HOME (step outputs of the default
      # IO manager live under DAGSTER_HOME/storage), both emptyDirs.
      container_config:
        volume_mounts:
          - name: tmp
            mount_path: /tmp
          - name: dagster-home
            mount_path: {{ include "aggregator.dagsterHome" . }}
      pod_spec_config:
        automount_service_account_token: false
        volumes:
          - name: tmp
            empty_dir:
              size_limit: {{ $r.tmpSize }}
          - name: dagster-home
            empty_dir:
              size_limit: {{ $r.dagsterHomeSize }}
        security_context:
          fs_group: 10001
          seccomp_profile:
            type: RuntimeDefault
      job_spec_config:
        ttl_seconds_after_finished: {{ $r.ttlSecondsAfterFinished }}
        backoff_limit: 0

compute_logs:
  module: dagster_aws.s3.compute_log_manager
  class: S3ComputeLogManager
  config:
    bucket: {{ .Values.computeLogs.bucket }}
    prefix: {{ .Values.computeLogs.prefix }}
    region: {{ .Values.computeLogs.region }}
    local_dir: /tmp/dagster-compute-logs
    skip_empty_files: true
    upload_interval: 30

run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    dequeue_use_threads: true
    dequeue_num_workers: {{ $r.dequeueWorkers }}
    # A run dequeued while its code server restarts (a crash, a deploy) waits for it instead of failing:
    # up to 12 more tries, 5 s apart (docs/operations.md).
    max_user_code_failure_retries: 12
    user_code_failure_retry_delay: 5

concurrency:
  runs:
    max_concurrent_runs: {{ $r.maxConcurrentRuns }}
    tag_concurrency_limits:
      # At most this many concurrent runs of a pipeline that allows overlapping runs (see pools below).
      - key: aggregator/pipeline
        value:
          applyLimitPerUniqueValue: true
        limit: {{ $r.perPipelineConcurrency }}

  pools:
    # One run per pipeline at a time: a pipeline's assets are in the pool `pipeline/<name>` (unless its spec
    # says `overlapping_runs: true`), and `run` granularity makes the run queue hold a run until every pool it
    # needs has a free slot, however the run was started. Raise one pipeline's limit with
    # `dagster instance concurrency set pipeline/<name> N` (or the UI's Concurrency page).
    default_limit: 1
    granularity: run

run_monitoring:
  enabled: true
  start_timeout_seconds: {{ $r.startTimeoutSeconds }}
  max_resume_run_attempts: {{ $r.maxResumeRunAttempts }}
  poll_interval_seconds: 120

run_retries:
  enabled: true
  max_retries: {{ $r.maxRetries }}
  retry_on_asset_or_op_failure: false

retention:
  schedule:
    purge_after_days: 30
  sensor:
    purge_after_days:
      skipped: 7
      failure: 30
      success: -1

python_logs:
  dagster_handler_config:
    handlers:
      json: {class: logging.StreamHandler, stream: "ext://sys.stderr", formatter: json}
    formatters:
      json: {"()": aggregator.logs.run_logger.RunJsonFormatter}

telemetry:
  enabled: false
{{- end }}

{{- define "aggregator.workspace" -}}
load_from:
  - grpc_server:
      host: aggregator-code-server
      port: {{ .Values.codeServer.port }}
      location_name: {{ .Values.codeServer.locationName }}
{{- end }}

{{/* Mounts and volumes of a Dagster pod: writable DAGSTER_HOME and /tmp, dagster.yaml laid over the home. */}}
{{- define "aggregator.dagsterMounts" -}}
- name: dagster-home
  mountPath: {{ include "aggregator.dagsterHome" . }}
- name: instance
  mountPath: {{ include "aggregator.dagsterHome" . }}/dagster.yaml
  subPath: dagster.yaml
  readOnly: true
- name: tmp
  mountPath: /tmp
{{- end }}

{{- define "aggregator.dagsterVolumes" -}}
- name: dagster-home
  emptyDir:
    sizeLimit: 1Gi
- name: tmp
  emptyDir:
    sizeLimit: 1Gi
- name: instance
  configMap:
    name: aggregator-dagster-instance
{{- end }}

{{/* Rolls a pod when the instance, the workspace or the specs change (the specs: so the code server loads the
revision the apply Job just stored). */}}
{{- define "aggregator.configChecksum" -}}
checksum/instance: {{ include "aggregator.dagsterInstance" . | sha256sum | trunc 16 }}
checksum/workspace: {{ include "aggregator.workspace" . | sha256sum | trunc 16 }}
checksum/pipelines: {{ include "aggregator.specFiles" . | sha256sum | trunc 16 }}
{{- end }}
