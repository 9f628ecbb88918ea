#!/usr/bin/env node
// Validates rendered Kubernetes manifests without a cluster:
//   1. every object against the Kubernetes API schema of its apiVersion/kind (kubernetes-models: types, required
//      fields, enums, formats), including the KEDA and Prometheus Operator CRDs;
//   2. unknown fields (a typo such as `readinesProbe` that the API server would drop or reject): the objects are
//      type-checked as object literals against the same models' TypeScript declarations, whose excess-property
//      check rejects any field the API does not define;
//   3. MailMesh's own rules: hardened pods, probes on /healthz and /readyz, /tmp emptyDir, every reference
//      (Service selectors and target ports, HPA/KEDA/PDB targets, ConfigMaps, Secrets) resolving inside the render.
//
// Usage: node validate-k8s.mjs [--values=<values.yaml>] <label>=<rendered.yaml> [...]   (exit 1 on any failure)
// --values: Secrets named by `existingSecret` in those values count as present (the operator brings them).
import { execFileSync } from "node:child_process";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { parseAllDocuments } from "yaml";

const here = dirname(fileURLToPath(import.meta.url));

/** apiVersion -> [module specifier prefix] for the models packages. */
function modelModule(apiVersion) {
  if (apiVersion.startsWith("keda.sh/")) return `@kubernetes-models/keda/${apiVersion}`;
  if (apiVersion.startsWith("monitoring.coreos.com/")) return `@kubernetes-models/prometheus-operator/${apiVersion}`;
  return `kubernetes-models/${apiVersion}`;
}

const failures = [];
const fail = (where, message) => failures.push(`${where}: ${message}`);

/** Loads every document of every render. */
function load(specs) {
  const renders = [];
  for (const spec of specs) {
    const eq = spec.indexOf("=");
    const [label, file] = eq > 0 ? [spec.slice(0, eq), spec.slice(eq + 1)] : [spec, spec];
    const objects = [];
    for (const doc of parseAllDocuments(readFileSync(file, "utf8"))) {
      if (doc.errors.length) {
        fail(label, `YAML error: ${doc.errors[0].message}`);
        continue;
      }
      const obj = doc.toJS();
      if (obj == null) continue;
      objects.push(obj);
    }
    renders.push({ label, objects });
  }
  return renders;
}

/** 1. Schema validation with the models' compiled validators. */
async function validateSchemas(render) {
  for (const obj of render.objects) {
    const where = `${render.label} ${obj.kind}/${obj.metadata?.name}`;
    if (!obj.apiVersion || !obj.kind) {
      fail(where, "missing apiVersion or kind");
      continue;
    }
    let mod;
    try {
      mod = await import(`${modelModule(obj.apiVersion)}/${obj.kind}`);
    } catch {
      fail(where, `no schema for ${obj.apiVersion} ${obj.kind} (unknown apiVersion/kind)`);
      continue;
    }
    const Model = mod[obj.kind];
    try {
      new Model(obj).validate();
    } catch (error) {
      fail(where, `schema: ${error.message}`);
    }
  }
}

/** 2. Unknown fields: tsc excess-property checks over the objects as typed literals. */
function validateKnownFields(renders) {
  const dir = mkdtempSync(join(tmpdir(), "mailmesh-k8s-"));
  try {
    const lines = [];
    const imports = new Map();
    const index = [];
    for (const render of renders) {
      for (const obj of render.objects) {
        const spec = `${modelModule(obj.apiVersion)}/${obj.kind}`;
        if (!imports.has(spec)) imports.set(spec, `T${imports.size}`);
        const n = index.length;
        index.push(`${render.label} ${obj.kind}/${obj.metadata?.name}`);
        lines.push(`// @object ${n}`);
        lines.push(`export const o${n}: ${imports.get(spec)} = ${JSON.stringify(obj, null, 1)};`);
      }
    }
    const header = [...imports].map(([spec, alias]) => {
      const kind = spec.slice(spec.lastIndexOf("/") + 1);
      return `import type { I${kind} as ${alias} } from "${spec}";`;
    });
    const source = [...header, ...lines].join("\n") + "\n";
    writeFileSync(join(dir, "objects.ts"), source);
    writeFileSync(join(dir, "tsconfig.json"), JSON.stringify({
      compilerOptions: {
        strict: true, noEmit: true, skipLibCheck: true, module: "nodenext", moduleResolution: "nodenext",
        target: "es2022", types: [],
      },
      files: ["objects.ts"],
    }));
    // The project lives in a temp dir: point module resolution at our node_modules with a symlink.
    execFileSync("ln", ["-s", join(here, "node_modules"), join(dir, "node_modules")]);
    let output = "";
    try {
      execFileSync(join(here, "node_modules", ".bin", "tsc"), ["-p", join(dir, "tsconfig.json"), "--pretty", "false"], {
        encoding: "utf8", stdio: ["ignore", "pipe", "pipe"],
      });
    } catch (error) {
      output = `${error.stdout ?? ""}${error.stderr ?? ""}`;
      if (!output.trim()) output = String(error);
    }
    if (output.trim()) {
      const sourceLines = source.split("\n");
      for (const line of output.trim().split("\n")) {
        const m = /objects\.ts\((\d+),\d+\): error TS\d+: (.*)/.exec(line);
        if (!m) {
          if (line.trim()) fail("typecheck", line.trim());
          continue;
        }
        let lineNo = Number(m[1]) - 1;
        while (lineNo >= 0 && !sourceLines[lineNo].startsWith("// @object ")) lineNo--;
        const where = lineNo >= 0 ? index[Number(sourceLines[lineNo].slice(11))] : "typecheck";
        fail(where, `field check: ${m[2]}`);
      }
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const matches = (selector, labels) =>
  Object.entries(selector ?? {}).every(([k, v]) => labels?.[k] === v) && Object.keys(selector ?? {}).length > 0;

/** 3. MailMesh's rules and reference integrity within one render. */
function validateRules(render, { existingSecrets }) {
  const byKind = (kind) => render.objects.filter((o) => o.kind === kind);
  const names = (kind) => new Set(byKind(kind).map((o) => o.metadata.name));
  const configMaps = names("ConfigMap");
  const secrets = new Set([...names("Secret"), ...existingSecrets]);
  const deployments = byKind("Deployment");
  const at = (o) => `${render.label} ${o.kind}/${o.metadata?.name}`;

  for (const o of render.objects) {
    const name = o.metadata?.name ?? "";
    if (!/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/.test(name) || name.length > 63) fail(at(o), `name "${name}" is not a DNS-1123 label`);
    if (!o.metadata?.labels?.["app.kubernetes.io/instance"]) fail(at(o), "missing app.kubernetes.io/instance label");
  }

  const podSpecs = [
    ...deployments.map((d) => ({ owner: d, pod: d.spec.template.spec, labels: d.spec.template.metadata?.labels })),
    ...byKind("Job").map((j) => ({ owner: j, pod: j.spec.template.spec, labels: j.spec.template.metadata?.labels })),
  ];
  for (const { owner, pod } of podSpecs) {
    const where = at(owner);
    if (pod.securityContext?.runAsNonRoot !== true) fail(where, "pod securityContext.runAsNonRoot must be true");
    if (pod.securityContext?.seccompProfile?.type !== "RuntimeDefault") fail(where, "pod seccompProfile must be RuntimeDefault");
    const volumes = new Map((pod.volumes ?? []).map((v) => [v.name, v]));
    for (const c of pod.containers) {
      const cw = `${where} container ${c.name}`;
      const sc = c.securityContext ?? {};
      if (sc.readOnlyRootFilesystem !== true) fail(cw, "readOnlyRootFilesystem must be true");
      if (sc.allowPrivilegeEscalation !== false) fail(cw, "allowPrivilegeEscalation must be false");
      if (sc.runAsNonRoot !== true) fail(cw, "runAsNonRoot must be true");
      if (!(sc.capabilities?.drop ?? []).includes("ALL")) fail(cw, "capabilities must drop ALL");
      if (sc.seccompProfile?.type !== "RuntimeDefault") fail(cw, "seccompProfile must be RuntimeDefault");
      if (!c.resources?.requests?.memory || !c.resources?.limits?.memory) fail(cw, "memory request and limit are required");
      const tmp = (c.volumeMounts ?? []).find((m) => m.mountPath === "/tmp");
      if (!tmp || !volumes.get(tmp.name)?.emptyDir) fail(cw, "needs an emptyDir mounted at /tmp (read-only root)");
      for (const m of c.volumeMounts ?? []) if (!volumes.has(m.name)) fail(cw, `volumeMount ${m.name} has no volume`);
      for (const ref of c.envFrom ?? []) {
        if (ref.configMapRef && !configMaps.has(ref.configMapRef.name)) fail(cw, `envFrom ConfigMap ${ref.configMapRef.name} is not rendered`);
      }
      for (const e of c.env ?? []) {
        const s = e.valueFrom?.secretKeyRef;
        if (s && !secrets.has(s.name)) fail(cw, `env ${e.name} references Secret ${s.name}, neither rendered nor an existingSecret of the values`);
      }
      if (owner.kind === "Deployment") {
        const ports = new Set((c.ports ?? []).map((p) => p.name));
        if (c.livenessProbe?.httpGet?.path !== "/healthz") fail(cw, "livenessProbe must GET /healthz");
        if (c.readinessProbe?.httpGet?.path !== "/readyz") fail(cw, "readinessProbe must GET /readyz");
        for (const probe of [c.livenessProbe, c.readinessProbe, c.startupProbe]) {
          const port = probe?.httpGet?.port;
          if (typeof port === "string" && !ports.has(port)) fail(cw, `probe port ${port} is not a container port`);
        }
        for (const p of c.ports ?? []) if (p.containerPort < 1024) fail(cw, `port ${p.containerPort} < 1024 needs root`);
      }
    }
    for (const [vname, v] of volumes) {
      if (v.secret && !secrets.has(v.secret.secretName)) fail(where, `volume ${vname} references Secret ${v.secret.secretName}, neither rendered nor an existingSecret`);
    }
  }

  for (const d of deployments) {
    if (!matches(d.spec.selector.matchLabels, d.spec.template.metadata.labels)) fail(at(d), "selector does not match the pod template labels");
  }
  for (const s of byKind("Service")) {
    const target = deployments.find((d) => matches(s.spec.selector, d.spec.template.metadata.labels));
    if (!target) {
      fail(at(s), "selector matches no Deployment");
      continue;
    }
    const ports = new Set(target.spec.template.spec.containers.flatMap((c) => (c.ports ?? []).map((p) => p.name)));
    for (const p of s.spec.ports) if (typeof p.targetPort === "string" && !ports.has(p.targetPort)) fail(at(s), `targetPort ${p.targetPort} is not a container port of ${target.metadata.name}`);
  }
  const scaled = new Map();
  for (const o of [...byKind("HorizontalPodAutoscaler"), ...byKind("ScaledObject")]) {
    const ref = o.spec.scaleTargetRef;
    if (!deployments.some((d) => d.metadata.name === ref.name)) fail(at(o), `scaleTargetRef ${ref.name} is not a rendered Deployment`);
    if (scaled.has(ref.name)) fail(at(o), `${ref.name} is also scaled by ${scaled.get(ref.name)}`);
    scaled.set(ref.name, at(o));
    const d = deployments.find((x) => x.metadata.name === ref.name);
    if (d && d.spec.replicas !== undefined) fail(at(o), `${ref.name} sets spec.replicas although it is autoscaled (every upgrade would reset it)`);
  }
  for (const so of byKind("ScaledObject")) {
    for (const t of so.spec.triggers) {
      if (t.authenticationRef && !names("TriggerAuthentication").has(t.authenticationRef.name)) fail(at(so), `TriggerAuthentication ${t.authenticationRef.name} is not rendered`);
    }
  }
  for (const ta of byKind("TriggerAuthentication")) {
    for (const r of ta.spec.secretTargetRef ?? []) if (!secrets.has(r.name)) fail(at(ta), `Secret ${r.name} neither rendered nor an existingSecret`);
  }
  for (const pdb of byKind("PodDisruptionBudget")) {
    if (!deployments.some((d) => matches(pdb.spec.selector.matchLabels, d.spec.template.metadata.labels))) fail(at(pdb), "selector matches no Deployment");
  }
  for (const j of byKind("Job")) {
    const hook = j.metadata.annotations?.["helm.sh/hook"] ?? "";
    if (!hook.includes("pre-install") || !hook.includes("pre-upgrade")) fail(at(j), "migrator Job must be a pre-install,pre-upgrade hook");
    if (!j.metadata.annotations?.["helm.sh/hook-delete-policy"]) fail(at(j), "hook Job needs a hook-delete-policy");
  }
  for (const sm of byKind("ServiceMonitor")) {
    const selected = byKind("Service").filter((s) => matches(sm.spec.selector.matchLabels, s.metadata.labels));
    if (selected.length === 0) fail(at(sm), "selects no Service");
    for (const s of selected) if (!s.spec.ports.some((p) => p.name === sm.spec.endpoints[0].port)) fail(at(sm), `Service ${s.metadata.name} has no port ${sm.spec.endpoints[0].port}`);
  }
}

/** Every `existingSecret` named in a values file: Secrets the operator brings, so references to them are fine. */
function existingSecretsOf(node) {
  if (Array.isArray(node)) return node.flatMap(existingSecretsOf);
  if (node === null || typeof node !== "object") return [];
  return Object.entries(node).flatMap(([k, v]) => (k === "existingSecret" && typeof v === "string" && v ? [v] : existingSecretsOf(v)));
}

const args = process.argv.slice(2);
const existingSecrets = [];
const specs = [];
for (const a of args) {
  if (a.startsWith("--values=")) existingSecrets.push(...existingSecretsOf(parseAllDocuments(readFileSync(a.slice(9), "utf8"))[0].toJS()));
  else specs.push(a);
}
if (specs.length === 0) {
  console.error("usage: validate-k8s.mjs [--values=values.yaml ...] <label>=<rendered.yaml> ...");
  process.exit(2);
}
const renders = load(specs);
for (const render of renders) {
  await validateSchemas(render);
  validateRules(render, { existingSecrets });
  const kinds = {};
  for (const o of render.objects) kinds[o.kind] = (kinds[o.kind] ?? 0) + 1;
  console.log(`  ${render.label}: ${render.objects.length} objects (${Object.entries(kinds).map(([k, n]) => `${n} ${k}`).join(", ")})`);
}
validateKnownFields(renders);
if (failures.length) {
  for (const f of failures) console.error(`  FAIL ${f}`);
  process.exit(1);
}
console.log("  schemas (kubernetes-models), unknown fields (tsc) and MailMesh rules: ok");
