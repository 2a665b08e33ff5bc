{{/* Names and labels. */}}
{{- define "fhircast-hub.name" -}}
{{- default .Chart.Name .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "fhircast-hub.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- $name := default .Chart.Name .Values.nameOverride -}}
{{- if contains $name .Release.Name -}}
{{- .Release.Name | trunc 40 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name $name | trunc 40 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{- define "fhircast-hub.gateway.fullname" -}}{{ include "fhircast-hub.fullname" . }}-gateway{{- end -}}
{{- define "fhircast-hub.node.fullname" -}}{{ include "fhircast-hub.fullname" . }}-node{{- end -}}

{{- define "fhircast-hub.serviceAccountName" -}}
{{- if .Values.serviceAccount.create -}}
{{- default (include "fhircast-hub.fullname" .) .Values.serviceAccount.name -}}
{{- else -}}
{{- default "default" .Values.serviceAccount.name -}}
{{- end -}}
{{- end -}}

{{- define "fhircast-hub.selectorLabels" -}}
app.kubernetes.io/name: {{ include "fhircast-hub.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
{{- end -}}

{{- define "fhircast-hub.labels" -}}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{ include "fhircast-hub.selectorLabels" . }}
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
app.kubernetes.io/part-of: fhircast-hub
{{- end -}}

{{- define "fhircast-hub.image" -}}
{{- if .Values.image.digest -}}
{{ .Values.image.repository }}@{{ .Values.image.digest }}
{{- else -}}
{{ .Values.image.repository }}:{{ default .Chart.AppVersion .Values.image.tag }}
{{- end -}}
{{- end -}}

{{/* The DNS domain of the hub nodes' headless Service. */}}
{{- define "fhircast-hub.node.domain" -}}
{{ include "fhircast-hub.node.fullname" . }}.{{ .Release.Namespace }}.svc.{{ .Values.clusterDomain }}
{{- end -}}

{{/*
The Redis URL, with $(REDIS_USERNAME) / $(REDIS_PASSWORD) references Kubernetes expands
from the env entries defined before it (see fhircast-hub.redisEnv).
*/}}
{{- define "fhircast-hub.redisUrl" -}}
{{- $r := .Values.redis -}}
{{- $tls := ternary "rediss" "redis" $r.tls -}}
{{- $scheme := $tls -}}
{{- if eq $r.topology "sentinel" -}}{{- $scheme = printf "%s+sentinel" $tls -}}{{- end -}}
{{- if eq $r.topology "cluster" -}}{{- $scheme = printf "%s+cluster" $tls -}}{{- end -}}
{{- $creds := "" -}}
{{- if $r.auth.existingSecret -}}
{{- $creds = printf "%s:$(REDIS_PASSWORD)@" (ternary "$(REDIS_USERNAME)" "" (ne $r.auth.usernameKey "")) -}}
{{- end -}}
{{- $path := "" -}}
{{- if eq $r.topology "sentinel" -}}
{{- $path = printf "/%s" (required "redis.sentinelMaster is required with redis.topology=sentinel" $r.sentinelMaster) -}}
{{- else if and (eq $r.topology "single") (ne (toString $r.database) "") -}}
{{- $path = printf "/%v" $r.database -}}
{{- end -}}
{{- printf "%s://%s%s%s" $scheme $creds (required "redis.hosts is required" $r.hosts) $path -}}
{{- end -}}

{{/* Env entries shared by both components: topic key, Redis, trust bundle. */}}
{{- define "fhircast-hub.commonEnv" -}}
- name: FHIRCAST_TOPIC_KEY
  valueFrom:
    secretKeyRef:
      name: {{ required "topicKey.existingSecret is required: create a Secret holding the topic key (docs/deployment.md)" .Values.topicKey.existingSecret }}
      key: {{ .Values.topicKey.key }}
{{- with .Values.redis.auth }}
{{- if .existingSecret }}
{{- if .usernameKey }}
- name: REDIS_USERNAME
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .usernameKey }}
{{- end }}
- name: REDIS_PASSWORD
  valueFrom:
    secretKeyRef:
      name: {{ .existingSecret }}
      key: {{ .passwordKey }}
{{- end }}
{{- end }}
- name: FHIRCAST_REDIS_URL
  value: {{ include "fhircast-hub.redisUrl" . | quote }}
{{- if or .Values.trustBundle.configMap .Values.trustBundle.secret }}
- name: SSL_CERT_FILE
  value: /etc/fhircast/trust/{{ .Values.trustBundle.key }}
{{- end }}
{{- end -}}

{{- define "fhircast-hub.trustVolume" -}}
{{- if .Values.trustBundle.configMap }}
- name: trust-bundle
  configMap:
    name: {{ .Values.trustBundle.configMap }}
{{- else if .Values.trustBundle.secret }}
- name: trust-bundle
  secret:
    secretName: {{ .Values.trustBundle.secret }}
{{- end }}
{{- end -}}

{{- define "fhircast-hub.trustMount" -}}
{{- if or .Values.trustBundle.configMap .Values.trustBundle.secret }}
- name: trust-bundle
  mountPath: /etc/fhircast/trust
  readOnly: true
{{- end }}
{{- end -}}

{{/*
Checks of the combination of values, before anything renders. Production mode refuses
what is only acceptable on a trial cluster.
*/}}
{{- define "fhircast-hub.validate" -}}
{{- $v := .Values -}}
{{- $g := $v.gateway -}}
{{- $_ := required "gateway.publicUrl is required: the https:// URL apps reach the hub at" $g.publicUrl -}}
{{- $a := $g.auth -}}
{{- if $a.issuers -}}
{{- range $key := list "issuer" "jwksUrl" "algorithms" "tokenTypePolicy" -}}
{{- if index $a $key -}}
{{- fail (printf "gateway.auth.issuers excludes gateway.auth.%s (the gateway refuses the single-issuer flags with --issuers-file): give it per issuer in the list" $key) -}}
{{- end -}}
{{- end -}}
{{- if not (kindIs "invalid" $a.jwksRefreshMinSeconds) -}}
{{- fail "gateway.auth.issuers excludes gateway.auth.jwksRefreshMinSeconds (the gateway refuses the single-issuer flags with --issuers-file): give jwksRefreshMinSeconds per issuer in the list" -}}
{{- end -}}
{{- if $a.introspection.enabled -}}
{{- fail "gateway.auth.issuers excludes gateway.auth.introspection.enabled (the gateway refuses the --introspection-* flags with --issuers-file): give introspection in the entry of the issuer that needs it" -}}
{{- end -}}
{{- $seen := dict -}}
{{- $introspecting := list -}}
{{- range $a.issuers -}}
{{- if hasKey $seen .issuer -}}
{{- fail (printf "gateway.auth.issuers lists issuer %s twice" .issuer) -}}
{{- end -}}
{{- $_ := set $seen .issuer true -}}
{{- if and (not .audience) (not $a.audience) -}}
{{- fail (printf "gateway.auth.issuers: issuer %s names no audience: set its audience or gateway.auth.audience" .issuer) -}}
{{- end -}}
{{- if .introspection -}}
{{- $introspecting = append $introspecting .issuer -}}
{{- end -}}
{{- end -}}
{{- if gt (len $introspecting) 1 -}}
{{- fail (printf "gateway.auth.issuers: only one issuer may use introspection (an opaque token does not say who issued it), not %s" (join ", " $introspecting)) -}}
{{- end -}}
{{- else -}}
{{- $_ := required "gateway.auth.issuer is required: the iss of accepted SMART tokens (or list several in gateway.auth.issuers)" $a.issuer -}}
{{- $_ := required "gateway.auth.audience is required: the aud accepted tokens carry" $a.audience -}}
{{- if $a.introspection.enabled -}}
{{- $_ := required "gateway.auth.introspection.enabled needs gateway.auth.introspection.clientId: the hub's client id at the authorization server" $a.introspection.clientId -}}
{{- $_ := required "gateway.auth.introspection.enabled needs gateway.auth.introspection.existingSecret: the Secret holding the hub's client secret (never a value)" $a.introspection.existingSecret -}}
{{- end -}}
{{- end -}}
{{- if and (eq $g.tls.mode "proxy") (not (hasPrefix "https://" $g.publicUrl)) -}}
{{- fail "gateway.tls.mode=proxy (--behind-tls-proxy) needs an https:// gateway.publicUrl" -}}
{{- end -}}
{{- if and (eq $g.tls.mode "own") (not $g.tls.existingSecret) -}}
{{- fail "gateway.tls.mode=own needs gateway.tls.existingSecret (a kubernetes.io/tls Secret)" -}}
{{- end -}}
{{- if and $g.admin.enabled (ne $g.tls.mode "own") -}}
{{- fail "gateway.admin.enabled needs gateway.tls.mode=own: the gateway serves the admin API off loopback only over TLS (--admin-listen needs --tls-cert)" -}}
{{- end -}}
{{- if and $g.admin.enabled (eq (int $g.admin.port) (int $g.port)) -}}
{{- fail "gateway.admin.port must differ from gateway.port: the admin API is never served on the public listener" -}}
{{- end -}}
{{- if and $v.grpcTls.certManager.enabled (not $v.grpcTls.certManager.issuerRef.name) -}}
{{- fail "grpcTls.certManager.enabled needs grpcTls.certManager.issuerRef.name" -}}
{{- end -}}
{{- if $v.production -}}
{{- if not $v.redis.tls -}}
{{- fail "production: redis.tls must be true (rediss://): Redis holds patient data" -}}
{{- end -}}
{{- if not $v.redis.auth.existingSecret -}}
{{- fail "production: redis.auth.existingSecret must name the Secret with the Redis ACL user's password" -}}
{{- end -}}
{{- if not $v.redis.auth.usernameKey -}}
{{- fail "production: redis.auth.usernameKey must be set: use an ACL user of its own, not Redis's default user" -}}
{{- end -}}
{{- if not $v.grpcTls.enabled -}}
{{- fail "production: grpcTls.enabled must be true (mutual TLS between gateways and hub nodes)" -}}
{{- end -}}
{{- if not (hasPrefix "https://" $g.publicUrl) -}}
{{- fail "production: gateway.publicUrl must be https://" -}}
{{- end -}}
{{- if and (eq $g.tls.mode "proxy") (not $g.trustedProxies) -}}
{{- fail "production: gateway.tls.mode=proxy needs gateway.trustedProxies (the proxies' addresses or CIDR blocks)" -}}
{{- end -}}
{{- if eq $g.auth.topicBinding "none" -}}
{{- fail "production: gateway.auth.topicBinding=none lets any valid token use any topic; use claim or owner" -}}
{{- end -}}
{{- if not $v.networkPolicy.enabled -}}
{{- fail "production: networkPolicy.enabled must be true (the hub nodes' gRPC port and the admin port are restricted)" -}}
{{- end -}}
{{- if and (eq $v.redis.topology "sentinel") (not (kindIs "invalid" $v.redis.waitReplicas)) (lt (int $v.redis.waitReplicas) 1) -}}
{{- fail "production: redis.waitReplicas must be at least 1 with Sentinel (a failover would lose acknowledged changes)" -}}
{{- end -}}
{{- end -}}
{{- end -}}

{{/*
Scheduling for a component's pods: its nodeSelector, tolerations, affinity (default:
prefer one pod per host), topology spread. Call with (dict "root" $ "values" <component
values> "component" <name>).
*/}}
{{- define "fhircast-hub.scheduling" -}}
{{- $c := .values -}}
{{- with $c.nodeSelector }}
nodeSelector:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- with $c.tolerations }}
tolerations:
  {{- toYaml . | nindent 2 }}
{{- end }}
affinity:
{{- if $c.affinity }}
  {{- toYaml $c.affinity | nindent 2 }}
{{- else }}
  podAntiAffinity:
    preferredDuringSchedulingIgnoredDuringExecution:
      - weight: 100
        podAffinityTerm:
          topologyKey: kubernetes.io/hostname
          labelSelector:
            matchLabels:
              {{- include "fhircast-hub.selectorLabels" .root | nindent 14 }}
              app.kubernetes.io/component: {{ .component }}
{{- end }}
{{- with $c.topologySpreadConstraints }}
topologySpreadConstraints:
  {{- toYaml . | nindent 2 }}
{{- end }}
{{- end -}}

{{/* Pod-level settings shared by both components. Call with (dict "root" $ "values" <component values>). */}}
{{- define "fhircast-hub.podSpecCommon" -}}
serviceAccountName: {{ include "fhircast-hub.serviceAccountName" .root }}
automountServiceAccountToken: false
enableServiceLinks: false
{{- with .root.Values.imagePullSecrets }}
imagePullSecrets:
  {{- range . }}
  - name: {{ . }}
  {{- end }}
{{- end }}
{{- with .values.priorityClassName }}
priorityClassName: {{ . }}
{{- end }}
terminationGracePeriodSeconds: {{ .values.terminationGracePeriodSeconds }}
securityContext:
  {{- toYaml .root.Values.podSecurityContext | nindent 2 }}
{{- end -}}

{{/*
The introspection settings in use, as JSON ({} when none): gateway.auth.introspection when
enabled, else the introspection of the one entry of gateway.auth.issuers that has it.
*/}}
{{- define "fhircast-hub.introspection" -}}
{{- $a := .Values.gateway.auth -}}
{{- $found := dict -}}
{{- if $a.issuers -}}
{{- range $a.issuers -}}
{{- if .introspection -}}{{- $found = .introspection -}}{{- end -}}
{{- end -}}
{{- else if $a.introspection.enabled -}}
{{- $found = $a.introspection -}}
{{- end -}}
{{- toJson $found -}}
{{- end -}}

{{/* Where the introspection client secret is mounted (a directory holding the Secret). */}}
{{- define "fhircast-hub.introspectionSecretPath" -}}
/etc/fhircast/introspection/{{ .key | default "client-secret" }}
{{- end -}}

{{/*
The issuers file (--issuers-file, docs/issuers.md) built from gateway.auth.issuers: the
file's member names, and the introspection secret as the path of the mounted Secret.
*/}}
{{- define "fhircast-hub.issuersFile" -}}
{{- $entries := list -}}
{{- range .Values.gateway.auth.issuers -}}
{{- $e := dict "issuer" .issuer -}}
{{- with .jwksUrl }}{{ $_ := set $e "jwks_url" . }}{{ end -}}
{{- with .audience }}{{ $_ := set $e "audience" . }}{{ end -}}
{{- with .algorithms }}{{ $_ := set $e "algorithms" . }}{{ end -}}
{{- with .topicClaim }}{{ $_ := set $e "topic_claim" . }}{{ end -}}
{{- if not (kindIs "invalid" .leewaySeconds) }}{{ $_ := set $e "leeway_seconds" (int64 .leewaySeconds) }}{{ end -}}
{{- with .tokenTypePolicy }}{{ $_ := set $e "token_type_policy" . }}{{ end -}}
{{- if not (kindIs "invalid" .jwksRefreshMinSeconds) }}{{ $_ := set $e "jwks_refresh_min_seconds" (int64 .jwksRefreshMinSeconds) }}{{ end -}}
{{- with .introspection -}}
{{- $i := dict "client_id" .clientId "client_secret_file" (include "fhircast-hub.introspectionSecretPath" .) -}}
{{- with .url }}{{ $_ := set $i "endpoint" . }}{{ end -}}
{{- if not (kindIs "invalid" .cacheSeconds) }}{{ $_ := set $i "cache_seconds" (int64 .cacheSeconds) }}{{ end -}}
{{- $_ := set $e "introspection" $i -}}
{{- end -}}
{{- $entries = append $entries $e -}}
{{- end -}}
{{- toPrettyJson (dict "issuers" $entries) -}}
{{- end -}}
