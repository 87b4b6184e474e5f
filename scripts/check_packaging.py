"""Helpers for scripts/check-packaging and scripts/render-deploy (run with .venv/bin/python).

    validate-manifests VERSION FILE...   every object of every YAML stream: Kubernetes kinds
                                         with kubernetes-validate (strict) at VERSION,
                                         cert-manager.io/v1 kinds against the vendored
                                         scripts/schemas/cert-manager-v1.json; any other kind
                                         fails
    webhook-config FILE OUT              the webhook config.yaml from a rendered chart
    ecs-spec-env FILE...                 the spec (SSM_INJECTOR_* environment) shared by the
                                         injector containers of the ECS task definitions, plus
                                         account and region, as shell assignments
    ecs-run-env FILE CONTAINER           one container's environment, as shell assignments
    check-ecs FILE DESCRIBED             a task definition as moto returns it
                                         (describe-task-definition) against the rules below
    free-port                            a free loopback TCP port
    wait-http URL SECONDS [CAFILE]       poll URL until it answers 2xx, within a deadline
    make-certs DIR HOST                  a CA and a server certificate for HOST in DIR
    seed ENDPOINT CAFILE                 the ECS example's parameters and secret, in moto
    admission-review NAMESPACE [PATH]    an AdmissionReview for an opted-in pod, on stdout
    dockerfile-run DOCKERFILE MARKER     the shell command of the RUN instruction containing
                                         MARKER (continuation lines joined)
    dockerfile-env DOCKERFILE            the final stage's ENV, as shell assignments
    check-patch NAMESPACE WANT_PATHS [HUB_URL HUB_CA [HUB_AUDIENCE]]
                                         the webhook's AdmissionReview answer (stdin) allows the
                                         pod and injects --path for each of WANT_PATHS (and
                                         --hub HUB_URL with the PEM of the file HUB_CA, and
                                         one projected token, of HUB_AUDIENCE, default
                                         ssm-injector-hub)
    config-key FILE KEY                  KEY of the webhook config FILE (empty when absent)
    check-hub FILE                       a rendered chart: with hub-url in the webhook config,
                                         the hub's objects agree with it and with each other
                                         (Service, StatefulSet, TLS, hub CA in the webhook
                                         pods, auth and RBAC, the token audience: the config's
                                         hub-audience is the hub's --audience, probes); every
                                         pod hardened
    hub-args FILE                        the rendered hub container's args without --listen,
                                         one a line
    check-self-tls FILE                  a rendered chart: with tls.mode self (webhook
                                         --tls-secret), the args, Service, configuration,
                                         token and RBAC agree, the RBAC is exactly what the
                                         code calls (limited by name where Kubernetes can),
                                         and nothing of cert-manager or a TLS Secret volume is
                                         left; the same for the hub's certificate
    hub-watch URL CAFILE NAME PATH       POST /v1/watch for NAME and PATH: every key answered
                                         with a version
"""

import base64
import datetime
import ipaddress
import json
import os
import shlex
import socket
import ssl
import sys
import time
import urllib.request

import jsonschema
import kubernetes_validate
import yaml

HERE = os.path.dirname(os.path.abspath(__file__))
INJECTOR_IMAGE_NAME = "ssm-injector"
SPEC_VARS = ["SSM_INJECTOR_PATH", "SSM_INJECTOR_PARAM", "SSM_INJECTOR_OPTIONAL_PARAM",
             "SSM_INJECTOR_NO_RECURSIVE", "SSM_INJECTOR_SPEC"]
PROBE = ["CMD", "/ssm-injector", "probe", "http://127.0.0.1:8099/readyz"]
# The webhook config's hub-audience when it has none (src/inject/mod.rs DEFAULT_HUB_AUDIENCE).
DEFAULT_HUB_AUDIENCE = "ssm-injector-hub"


def die(msg):
    sys.exit(f"check_packaging: {msg}")


def load_stream(path):
    with open(path) as f:
        return [d for d in yaml.safe_load_all(f) if d]


def validate_manifests(version, files):
    with open(os.path.join(HERE, "schemas", "cert-manager-v1.json")) as f:
        cm = json.load(f)
    failures, count, kinds = [], 0, {}
    for path in files:
        for obj in load_stream(path):
            count += 1
            kind, api = obj.get("kind"), obj.get("apiVersion")
            what = f"{path}: {kind} {obj.get('metadata', {}).get('name')}"
            kinds[kind] = kinds.get(kind, 0) + 1
            if api == "cert-manager.io/v1":
                schema = cm["definitions"].get(kind)
                if schema is None:
                    failures.append(f"{what}: no vendored schema for cert-manager.io/v1 {kind}")
                    continue
                errors = list(jsonschema.Draft7Validator(schema).iter_errors(obj))
                failures += [f"{what}: {'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors]
                continue
            try:
                kubernetes_validate.validate(obj, version, strict=True)
            except kubernetes_validate.SchemaNotFoundError:
                failures.append(f"{what}: {api} {kind} is not a Kubernetes {version} kind")
            except kubernetes_validate.ValidationError as e:
                failures.append(f"{what}: {'.'.join(map(str, e.path))}: {e.message}")
    if failures:
        die("invalid manifests:\n  " + "\n  ".join(failures))
    summary = ", ".join(f"{n} {k}" for k, n in sorted(kinds.items()))
    print(f"validated {count} objects in {len(files)} files against Kubernetes {version} "
          f"(strict) and cert-manager.io/v1: {summary}")


def webhook_config(path, out):
    for obj in load_stream(path):
        if obj.get("kind") == "ConfigMap" and "config.yaml" in obj.get("data", {}):
            with open(out, "w") as f:
                f.write(obj["data"]["config.yaml"])
            return
    die(f"{path}: no ConfigMap with config.yaml")


def env_of(container):
    return {e["name"]: e["value"] for e in container.get("environment", [])}


def ecs_spec_env(files):
    specs = {}
    for path in files:
        with open(path) as f:
            td = json.load(f)
        # The injector containers, and the apps that run `exec --watch` with their own spec.
        for c in td["containerDefinitions"]:
            env = env_of(c)
            if not any(k in env for k in SPEC_VARS):
                continue
            spec = {k: env[k] for k in SPEC_VARS if k in env}
            account = td["taskRoleArn"].split(":")[4]
            region = c["logConfiguration"]["options"]["awslogs-region"]
            spec.update(SSM_INJECTOR_ACCOUNT=account, SSM_INJECTOR_REGION=region)
            specs[f"{path}:{c['name']}"] = spec
    distinct = {json.dumps(s, sort_keys=True) for s in specs.values()}
    if len(distinct) != 1:
        die("the ECS task definitions' injector containers ask for different specs, so one "
            "task role policy does not fit them all:\n" + json.dumps(specs, indent=2))
    for k, v in sorted(json.loads(distinct.pop()).items()):
        print(f"{k}={shlex.quote(v)}")


def ecs_run_env(path, name):
    with open(path) as f:
        td = json.load(f)
    (c,) = [c for c in td["containerDefinitions"] if c["name"] == name]
    for k, v in env_of(c).items():
        print(f"{k}={shlex.quote(v)}")
    print(f"ECS_COMMAND={shlex.quote(' '.join(c['command']))}")


def check_ecs(path, described):
    """The committed file and moto's copy of it, checked against the packaging rules."""
    with open(path) as f:
        want = json.load(f)
    with open(described) as f:
        td = json.load(f)["taskDefinition"]
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    need(td["family"] == want["family"], "family differs from the file")
    need(td.get("status") == "ACTIVE", f"status {td.get('status')}")
    need(td.get("requiresCompatibilities") == want["requiresCompatibilities"], "requiresCompatibilities lost")
    by_name = {c["name"]: c for c in td["containerDefinitions"]}
    need(set(by_name) == {c["name"] for c in want["containerDefinitions"]}, "containers differ from the file")
    volumes = {v["name"]: v for v in td.get("volumes", [])}
    launch = want["requiresCompatibilities"][0]
    injectors = [c for n, c in by_name.items() if n.startswith("ssm-injector")]
    apps = [c for n, c in by_name.items() if not n.startswith("ssm-injector")]
    need(len(injectors) == 1 and len(apps) == 1, "expected one injector and one app container")
    inj, app = injectors[0], apps[0]
    sidecar = "--watch" in inj.get("command", [])
    # exec --watch: the injector only installs the binary; the app runs it as its entrypoint.
    exec_mode = inj.get("command", [])[:1] == ["install"]
    kind = "sidecar" if sidecar else "exec" if exec_mode else "init"
    # The injector: non-root, read-only root, no capabilities, its own image.
    need(inj.get("user") == "65532:65532", f"{inj['name']}: user {inj.get('user')!r}, want 65532:65532")
    need(inj.get("readonlyRootFilesystem") is True, f"{inj['name']}: readonlyRootFilesystem is not true")
    caps = inj.get("linuxParameters", {}).get("capabilities", {})
    need(caps.get("drop") == ["ALL"], f"{inj['name']}: capabilities.drop {caps.get('drop')}, want [ALL]")
    need(INJECTOR_IMAGE_NAME in inj["image"], f"{inj['name']}: image {inj['image']}")
    need(inj.get("command", [])[:1] in (["render"], ["install"]), f"{inj['name']}: command {inj.get('command')}")
    if sidecar:
        need(inj["name"] == "ssm-injector", "the sidecar is named ssm-injector")
        need(inj.get("essential") is True, "sidecar: essential must be true (the app needs it running)")
        hc = inj.get("healthCheck", {})
        need(hc.get("command") == PROBE, f"sidecar healthCheck {hc.get('command')}, want {PROBE}")
        need(env_of(inj).get("SSM_INJECTOR_LISTEN") == "127.0.0.1:8099",
             "sidecar: SSM_INJECTOR_LISTEN must be 127.0.0.1:8099 (what the health check probes)")
        need(all(k in hc for k in ("interval", "timeout", "retries", "startPeriod")),
             f"sidecar healthCheck lacks interval/timeout/retries/startPeriod: {hc}")
        cond = "HEALTHY"
    else:
        need(inj["name"] == "ssm-injector-init", "the init container is named ssm-injector-init")
        need(inj.get("essential") is False, "init: essential must be false (it exits)")
        need("healthCheck" not in inj, "init: no health check (it exits)")
        cond = "SUCCESS"
    if exec_mode:
        # install DIR, then the app's entrypoint is DIR/ssm-injector exec --watch -- ITS COMMAND,
        # with the spec in its environment and the health check run by the installed binary.
        cmd = inj.get("command", [])
        need(len(cmd) == 2, f"{inj['name']}: command {cmd}, want [install, DIR]")
        installed = (cmd[1].rstrip("/") if len(cmd) == 2 else "?") + "/ssm-injector"
        acmd = app.get("command", [])
        need(acmd[:4] == [installed, "exec", "--watch", "--"] and len(acmd) > 4,
             f"{app['name']}: command {acmd}, want [{installed}, exec, --watch, --, APP...]")
        aenv = env_of(app)
        need(any(k in aenv for k in SPEC_VARS), f"{app['name']}: no spec ({', '.join(SPEC_VARS)})")
        need("SSM_INJECTOR_OUTPUT" not in aenv, f"{app['name']}: exec writes no file: SSM_INJECTOR_OUTPUT")
        need(aenv.get("SSM_INJECTOR_LISTEN") == "127.0.0.1:8099",
             f"{app['name']}: SSM_INJECTOR_LISTEN must be 127.0.0.1:8099 (what the health check probes)")
        probe = ["CMD", installed] + PROBE[2:]
        need(app.get("healthCheck", {}).get("command") == probe,
             f"{app['name']}: healthCheck {app.get('healthCheck')}, want {probe}")
        need(app.get("user", "0").split(":")[0] not in ("0", "root"), f"{app['name']}: runs as root")
        need(app.get("readonlyRootFilesystem") is True, f"{app['name']}: readonlyRootFilesystem is not true")
    need(app.get("dependsOn") == [{"containerName": inj["name"], "condition": cond}],
         f"{app['name']}: dependsOn {app.get('dependsOn')}, want {inj['name']} {cond}")
    need(app.get("essential") is True, f"{app['name']}: essential must be true")
    # One shared volume: the injector writes it (the values, or the binary), the app reads it.
    out = cmd[1] if exec_mode and len(cmd) == 2 else env_of(inj).get("SSM_INJECTOR_OUTPUT", "")
    im = inj.get("mountPoints", [])
    am = app.get("mountPoints", [])
    need(len(im) == 1 and len(am) == 1, "one mount point each")
    if im and am:
        need(im[0]["sourceVolume"] == am[0]["sourceVolume"] and im[0]["sourceVolume"] in volumes,
             "injector and app must mount the same task volume")
        need(im[0]["containerPath"] == am[0]["containerPath"], "same container path in both")
        need(im[0].get("readOnly") is False, "the injector mounts the volume read-write")
        need(am[0].get("readOnly") is True, "the app mounts the volume read-only")
        need(out.startswith(im[0]["containerPath"].rstrip("/") + "/"),
             f"{'install DIR' if exec_mode else 'SSM_INJECTOR_OUTPUT'} {out!r} is not on the shared volume")
        vol = volumes.get(im[0]["sourceVolume"], {})
        if launch == "EC2":
            dvc = vol.get("dockerVolumeConfiguration", {})
            need(dvc.get("scope") == "task" and dvc.get("driverOpts", {}).get("type") == "tmpfs",
                 f"EC2: the volume must be a task-scoped tmpfs, got {vol}")
            need("uid=65532" in dvc.get("driverOpts", {}).get("o", ""), "EC2: tmpfs owned by 65532")
        else:
            need(set(vol) == {"name"}, f"Fargate: a plain task volume (ephemeral storage), got {vol}")
    need(td.get("taskRoleArn", "").endswith(":role/my-app-task"), "taskRoleArn (gets task-role-policy.json)")
    if problems:
        die(f"{path}:\n  " + "\n  ".join(problems))
    print(f"{os.path.basename(path)}: {launch} {kind}: "
          f"{inj['name']} (essential {inj['essential']}, user {inj['user']}, read-only root) -> "
          f"{app['name']} dependsOn {cond}; shared volume {im[0]['sourceVolume']} at {im[0]['containerPath']}"
          + ("; health check " + " ".join(PROBE[1:]) if sidecar else "")
          + (f"; {app['name']} runs " + " ".join(app["command"]) if exec_mode else ""))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        print(s.getsockname()[1])


def wait_http(url, seconds, cafile=None):
    ctx = ssl.create_default_context(cafile=cafile) if cafile else None
    deadline = time.monotonic() + float(seconds)
    last = None
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(url, timeout=2, context=ctx) as r:
                if 200 <= r.status < 300:
                    return
                last = r.status
        except Exception as e:  # not up yet
            last = e
        time.sleep(0.1)  # poll interval, bounded by the deadline
    die(f"{url} did not answer 2xx within {seconds}s: {last}")


def make_certs(out, host):
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = datetime.datetime.now(datetime.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "check-packaging test CA")])
    ca = (x509.CertificateBuilder().subject_name(ca_name).issuer_name(ca_name)
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5))
          .not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
          .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                       content_commitment=False, key_encipherment=False,
                                       data_encipherment=False, key_agreement=False,
                                       encipher_only=False, decipher_only=False), critical=True)
          .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)]))
            .issuer_name(ca_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName(
                [x509.DNSName(host), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    pem = serialization.Encoding.PEM
    with open(os.path.join(out, "ca.crt"), "wb") as f:
        f.write(ca.public_bytes(pem))
    with open(os.path.join(out, "tls.crt"), "wb") as f:
        f.write(cert.public_bytes(pem))
    with open(os.path.join(out, "tls.key"), "wb") as f:
        f.write(key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()))


def seed(endpoint, cafile):
    import boto3

    kw = dict(endpoint_url=endpoint, region_name="us-east-1", aws_access_key_id="testing",
              aws_secret_access_key="testing", verify=cafile)
    ssm = boto3.client("ssm", **kw)
    sm = boto3.client("secretsmanager", **kw)
    ssm.put_parameter(Name="/my-app/prod/api-url", Value="https://api.example.com", Type="String")
    ssm.put_parameter(Name="/my-app/prod/feature/flags", Value="a,b", Type="String")
    ssm.put_parameter(Name="/my-app/prod/token", Value="s3cr3t 'quoted' $value", Type="SecureString")
    sm.create_secret(Name="my-app/prod/db", SecretString=json.dumps({"username": "app", "password": "pa55w0rd"}))


def admission_review(namespace, path=None):
    annotations = {"ssm-injector.io/inject": "true", "ssm-injector.io/mode": "init+sidecar"}
    if path:
        annotations["ssm-injector.io/path"] = path
    pod = {"apiVersion": "v1", "kind": "Pod",
           "metadata": {"name": "web", "namespace": namespace, "annotations": annotations},
           "spec": {"containers": [{"name": "app", "image": "nginx"}]}}
    print(json.dumps({"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview",
                      "request": {"uid": "0f0e0d0c-0000-4000-8000-000000000001",
                                  "kind": {"group": "", "version": "v1", "kind": "Pod"},
                                  "resource": {"group": "", "version": "v1", "resource": "pods"},
                                  "namespace": namespace, "operation": "CREATE",
                                  "userInfo": {"username": "check-packaging"}, "object": pod}}))


def token_audiences(value):
    """The audience of every serviceAccountToken projection anywhere in `value`."""
    if isinstance(value, dict):
        found = [value["serviceAccountToken"].get("audience")] if "serviceAccountToken" in value else []
        return found + [a for v in value.values() for a in token_audiences(v)]
    if isinstance(value, list):
        return [a for v in value for a in token_audiences(v)]
    return []


def config_key(path, key):
    with open(path) as f:
        value = (yaml.safe_load(f) or {}).get(key)
    print("" if value is None else value)


def check_patch(namespace, want_paths, hub_url="", hub_ca="", hub_audience=""):
    answer = json.load(sys.stdin)["response"]
    if not answer.get("allowed"):
        die(f"the webhook refused the pod in {namespace}: {answer.get('status')}")
    if not want_paths:
        return
    patch = json.loads(base64.b64decode(answer["patch"]))
    text = json.dumps(patch)
    for p in want_paths.split(","):
        if f'"--path", "{p}"' not in text:
            die(f"the patch for a pod in {namespace} does not fetch {p}: {text[:400]}")
    if hub_url:
        if f'"--hub", "{hub_url}"' not in text:
            die(f"the patch for a pod in {namespace} does not follow the hub {hub_url}: {text[:400]}")
        with open(hub_ca) as f:
            pem = f.read()
        if json.dumps({"name": "SSM_INJECTOR_HUB_CA_PEM", "value": pem})[1:-1] not in text:
            die(f"the patch for a pod in {namespace} lacks SSM_INJECTOR_HUB_CA_PEM with {hub_ca}")
        want = hub_audience or DEFAULT_HUB_AUDIENCE
        got = token_audiences(patch)
        if got != [want]:
            die(f"the patch for a pod in {namespace} projects tokens of audiences {got}, want one token of audience {want}")


def check_hub(path):
    """The objects a chart value set renders for the hub agree with each other and with the
    webhook's config; every pod runs hardened. One line of what was found."""
    objs = load_stream(path)
    by = {(o["kind"], o["metadata"]["name"]): o for o in objs}
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    for o in objs:
        if o["kind"] in ("Deployment", "StatefulSet"):
            pod = o["spec"]["template"]["spec"]
            psc = pod.get("securityContext", {})
            need(psc.get("runAsNonRoot") is True and psc.get("seccompProfile") == {"type": "RuntimeDefault"},
                 f"{o['kind']} {o['metadata']['name']}: pod securityContext {psc}")
            for c in pod["containers"]:
                sc = c.get("securityContext", {})
                need(sc.get("readOnlyRootFilesystem") is True and sc.get("allowPrivilegeEscalation") is False
                     and sc.get("privileged") is False and sc.get("capabilities") == {"drop": ["ALL"]}
                     and sc.get("runAsNonRoot") is True
                     and sc.get("seccompProfile") == {"type": "RuntimeDefault"},
                     f"{o['kind']} {o['metadata']['name']}: container {c['name']} securityContext {sc}")
                for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                    get = c.get(probe, {}).get("httpGet", {})
                    need(get.get("scheme") == "HTTPS" and get.get("port") == "https",
                         f"{o['kind']} {o['metadata']['name']}: {probe} is not an HTTPS GET on port https")
    (cm,) = [o for o in objs if o["kind"] == "ConfigMap" and "config.yaml" in o.get("data", {})]
    config = yaml.safe_load(cm["data"]["config.yaml"])
    sts = [o for o in objs if o["kind"] == "StatefulSet"]
    url = config.get("hub-url")
    name = os.path.basename(path)
    if not url:
        need(not sts and "hub-ca-file" not in config, "hub objects or hub-ca-file without hub-url")
        if problems:
            die(f"{path}:\n  " + "\n  ".join(problems))
        print(f"{name}: no hub; pods hardened, HTTPS probes")
        return
    host, _, port = url.removeprefix("https://").rpartition(":")
    svc_name, ns, svc_word = (host.split(".") + ["", "", ""])[:3]
    need(url.startswith("https://") and svc_word == "svc" and host.count(".") == 2,
         f"hub-url {url} is not https://SERVICE.NAMESPACE.svc:PORT")
    svc = by.get(("Service", svc_name))
    need(svc is not None, f"hub-url names the Service {svc_name}, which is not rendered")
    need(len(sts) == 1, f"{len(sts)} StatefulSets, want the hub's one")
    if problems:
        die(f"{path}:\n  " + "\n  ".join(problems))
    (s,) = sts
    need(svc["metadata"]["namespace"] == ns and s["metadata"]["namespace"] == ns,
         f"hub-url namespace {ns} is not the Service's and StatefulSet's")
    (sport,) = svc["spec"]["ports"]
    need(str(sport["port"]) == port and sport["targetPort"] == "https",
         f"Service {svc_name} port {sport}, want {port} -> https")
    tmpl = s["spec"]["template"]
    labels = tmpl["metadata"]["labels"]
    need(s["spec"]["selector"]["matchLabels"] == svc["spec"]["selector"]
         and svc["spec"]["selector"].items() <= labels.items(),
         "the hub Service does not select exactly the StatefulSet's pods")
    need(s["spec"].get("serviceName") == svc_name, "StatefulSet serviceName is not the hub Service")
    pods = tmpl["spec"]
    (c,) = pods["containers"]
    need(c["args"][0] == "hub", f"the hub container runs {c['args'][:1]}")
    flags = dict(a[2:].split("=", 1) for a in c["args"][1:])
    (https,) = [p for p in c["ports"] if p["name"] == "https"]
    need(flags.get("listen", "").endswith(f":{https['containerPort']}"), f"--listen {flags.get('listen')} is not the https port")
    need(c["readinessProbe"]["httpGet"]["path"] == "/readyz", "the hub's readiness probe is not /readyz")
    vols = {v["name"]: v for v in pods.get("volumes", [])}
    mounts = {m["mountPath"]: vols[m["name"]] for m in c.get("volumeMounts", [])}
    (dep,) = [o for o in objs if o["kind"] == "Deployment"]
    wpod = dep["spec"]["template"]["spec"]
    wflags = dict(a[2:].split("=", 1) for a in wpod["containers"][0]["args"][1:])
    self_tls = "tls-secret" in flags
    if self_tls:
        # Issued from the webhook's CA Secret for the hub's Service; the webhook gives the
        # sidecars that CA bundle (no hub-ca-file). check-self-tls checks the rest.
        need(flags.get("service-name") == svc_name, f"the hub's --service-name {flags.get('service-name')} is not its Service {svc_name}")
        need(flags["tls-secret"] == wflags.get("tls-secret"),
             f"the hub's --tls-secret {flags['tls-secret']} is not the webhook's {wflags.get('tls-secret')}")
        need("hub-ca-file" not in config, "hub-ca-file with a hub certificate from the webhook's CA")
        tls_from = f"the webhook's CA Secret {flags['tls-secret']}"
    else:
        for f in ("cert", "key"):
            need(os.path.dirname(flags.get(f, "")) in mounts, f"--{f} {flags.get(f)} is not on a mounted volume")
        tls_secret = mounts.get(os.path.dirname(flags.get("cert", "")), {}).get("secret", {}).get("secretName")
        certs = [o for o in objs if o["kind"] == "Certificate" and o["spec"]["secretName"] == tls_secret]
        need(all(host in o["spec"].get("dnsNames", []) for o in certs),
             f"the hub's Certificate is not valid for {host}")
        tls_from = f"Certificate {certs[0]['metadata']['name']}" if certs else f"provided Secret {tls_secret}"
    # The webhook pods: the hub CA file of the config, from the hub's TLS Secret or a ConfigMap.
    wvols = {v["name"]: v for v in wpod["volumes"]}
    ca_dir, ca_file = os.path.split(config.get("hub-ca-file", ""))
    wmounts = {m["mountPath"]: wvols[m["name"]] for m in wpod["containers"][0]["volumeMounts"]}
    ca_vol = wmounts.get(ca_dir)
    ca_from = None
    if self_tls:
        need("tls-secret" in wflags, "a hub certificate from the webhook's CA without webhook --tls-secret")
        ca_from = "its CA Secret (the bundle, no file)"
    elif ca_vol is None:
        need(False, f"the webhook pods do not mount hub-ca-file's directory {ca_dir}")
    elif "secret" in ca_vol:
        need(ca_vol["secret"].get("secretName") == tls_secret
             and {"key": "ca.crt", "path": ca_file} in ca_vol["secret"].get("items", []),
             f"the webhook's hub CA volume is not ca.crt of the hub's TLS Secret {tls_secret}: {ca_vol}")
        ca_from = f"ca.crt of {tls_secret}"
    else:
        ca_cm = by.get(("ConfigMap", ca_vol.get("configMap", {}).get("name")), {})
        need("-----BEGIN CERTIFICATE-----" in ca_cm.get("data", {}).get(ca_file, ""),
             f"the webhook's hub CA volume has no PEM {ca_file}: {ca_vol}")
        ca_from = f"ConfigMap {ca_cm.get('metadata', {}).get('name')}"
    # Auth: TokenReview needs an API token and system:auth-delegator; the webhook injects
    # tokens of its config's hub-audience, which the hub must check for (--audience).
    audience = config.get("hub-audience")
    need(isinstance(audience, str) and audience != "" and audience == audience.strip(),
         f"the webhook config has hub-url but hub-audience {audience!r}, want the hub's audience")
    sa = pods["serviceAccountName"]
    auth = flags.get("auth")
    crbs = [o for o in objs if o["kind"] == "ClusterRoleBinding"
            and o["roleRef"]["name"] == "system:auth-delegator"
            and {"kind": "ServiceAccount", "name": sa, "namespace": ns} in o["subjects"]]
    if auth == "kubernetes":
        need(flags.get("audience") == audience,
             f"the hub's --audience {flags.get('audience')!r} is not the webhook config's hub-audience "
             f"{audience!r}: the hub would refuse every injected sidecar's token")
        config_vol = mounts.get(os.path.dirname(flags.get("config", "")), {})
        need(config_vol.get("configMap", {}).get("name") == cm["metadata"]["name"],
             "auth kubernetes: the hub's --config is not the webhook's ConfigMap (namespace-prefixes)")
        need(pods.get("automountServiceAccountToken") is True, "auth kubernetes without an API token")
    else:
        need(auth == "none" and not crbs and pods.get("automountServiceAccountToken") is self_tls,
             f"auth {auth}: no auth-delegator binding, and a token only to read the CA Secret")
    pdbs = [o for o in objs if o["kind"] == "PodDisruptionBudget"
            and o["spec"]["selector"]["matchLabels"] == s["spec"]["selector"]["matchLabels"]]
    if problems:
        die(f"{path}:\n  " + "\n  ".join(problems))
    print(f"{name}: hub {url} -> StatefulSet {s['metadata']['name']} ({s['spec']['replicas']} replica{'' if s['spec']['replicas'] == 1 else 's'}, "
          f"auth {auth}{', auth-delegator bound' if crbs else ''}{', PDB' if pdbs else ''}), token audience {audience}, TLS from {tls_from}, "
          f"webhook {'gives sidecars' if self_tls else 'mounts'} the hub CA from {ca_from}; pods hardened, HTTPS probes")


def rbac_rules(objs, kind, name, namespace, sa):
    """The rules of the Role or ClusterRole `name`, when a binding gives it to `sa`."""
    role = next((o for o in objs if o["kind"] == kind and o["metadata"]["name"] == name), None)
    bound = any(o["kind"] == kind + "Binding" and o["roleRef"] == {"apiGroup": "rbac.authorization.k8s.io", "kind": kind, "name": name}
                and {"kind": "ServiceAccount", "name": sa, "namespace": namespace} in o["subjects"]
                for o in objs)
    return (role or {}).get("rules") if bound else None


def normal_rules(rules):
    return sorted((tuple(r.get("apiGroups", [])), tuple(r["resources"]), tuple(r.get("resourceNames", [])),
                   tuple(sorted(r["verbs"]))) for r in rules or [])


def check_self_tls(path):
    """tls.mode self: what the webhook (and the hub) are told, what they may do and what is
    rendered agree. The RBAC must be exactly what src/webhook/selftls.rs calls."""
    objs = load_stream(path)
    name = os.path.basename(path)
    (dep,) = [o for o in objs if o["kind"] == "Deployment"]
    pod = dep["spec"]["template"]["spec"]
    (c,) = [c for c in pod["containers"] if c["name"] == "webhook"]
    flags = dict(a[2:].split("=", 1) for a in c["args"][1:] if a.startswith("--"))
    kinds = sorted({o["kind"] for o in objs if o["apiVersion"].startswith("cert-manager.io/")})
    if "tls-secret" not in flags:
        if not all(f in flags for f in ("cert", "key")):
            die(f"{path}: the webhook has neither --cert/--key nor --tls-secret")
        print(f"{name}: certificate from files (--cert, --key){'; cert-manager: ' + ', '.join(kinds) if kinds else ''}")
        return
    problems = []

    def need(cond, msg):
        if not cond:
            problems.append(msg)

    ns = dep["metadata"]["namespace"]
    secret, config, service = flags["tls-secret"], flags.get("webhook-configuration"), flags.get("service-name")
    sa = pod["serviceAccountName"]
    need(flags.get("namespace") == ns, f"--namespace {flags.get('namespace')} is not the release namespace {ns}")
    need(not {"cert", "key", "cert-check-interval"} & flags.keys(), f"--tls-secret with file flags: {sorted(flags)}")
    mwcs = [o for o in objs if o["kind"] == "MutatingWebhookConfiguration"]
    need([m["metadata"]["name"] for m in mwcs] == [config],
         f"--webhook-configuration {config} is not the rendered configuration {[m['metadata']['name'] for m in mwcs]}")
    for m in mwcs:
        need("cert-manager.io/inject-ca-from" not in m["metadata"].get("annotations", {}),
             "the configuration still asks cert-manager for its caBundle")
        for w in m["webhooks"]:
            cc = w["clientConfig"]
            need("caBundle" not in cc, f"webhook {w['name']}: a rendered caBundle (the webhook sets it)")
            need(cc.get("service", {}).get("name") == service and cc["service"].get("namespace") == ns,
                 f"webhook {w['name']} calls {cc.get('service')}, not --service-name {service} in {ns}")
            need(bool(w.get("matchConditions")), f"webhook {w['name']}: no matchConditions (a caBundle not yet set would block every pod)")
    svc = next((o for o in objs if o["kind"] == "Service" and o["metadata"]["name"] == service), None)
    need(svc is not None and svc["spec"]["selector"].items() <= dep["spec"]["template"]["metadata"]["labels"].items(),
         f"--service-name {service} is not a Service selecting the webhook pods")
    need(pod.get("automountServiceAccountToken") is True, "no API token in the webhook pods")
    need("tls" not in {v["name"] for v in pod.get("volumes", [])}, "a TLS Secret volume in the webhook pods")
    hub_self = any(o["kind"] == "StatefulSet" and any(a.startswith("--tls-secret=") for a in o["spec"]["template"]["spec"]["containers"][0]["args"])
                   for o in objs)
    hub_cert_manager = any(o["kind"] == "Certificate" for o in objs)
    need(not kinds or hub_cert_manager, f"cert-manager objects with tls.mode self: {kinds}")
    rbac = any(o["kind"] == "Role" and o["metadata"]["name"] == f"{dep['metadata']['name']}-tls" for o in objs)
    summary = f"webhook --tls-secret {secret}, --webhook-configuration {config}, --service-name {service}"
    if rbac:
        role = rbac_rules(objs, "Role", f"{dep['metadata']['name']}-tls", ns, sa)
        want = normal_rules([
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create"]},
            {"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret], "verbs": ["get", "update"]},
        ])
        need(normal_rules(role) == want, f"the webhook's Role (bound to {sa}) is {role}, want exactly {want}")
        crole = rbac_rules(objs, "ClusterRole", f"{dep['metadata']['name']}-webhook-configuration", ns, sa)
        want = normal_rules([{"apiGroups": ["admissionregistration.k8s.io"], "resources": ["mutatingwebhookconfigurations"],
                              "resourceNames": [config], "verbs": ["get", "watch", "patch"]}])
        need(normal_rules(crole) == want, f"the webhook's ClusterRole (bound to {sa}) is {crole}, want exactly {want}")
        summary += "; RBAC exactly create secrets, get/update that Secret, get/watch/patch that configuration"
    else:
        summary += "; no RBAC rendered (rbac.create false)"
    if hub_self:
        (sts,) = [o for o in objs if o["kind"] == "StatefulSet"]
        hpod = sts["spec"]["template"]["spec"]
        hflags = dict(a[2:].split("=", 1) for a in hpod["containers"][0]["args"][1:] if a.startswith("--"))
        need(hflags.get("tls-secret") == secret and hflags.get("namespace") == ns,
             f"the hub reads {hflags.get('namespace')}/{hflags.get('tls-secret')}, not {ns}/{secret}")
        need(hpod.get("automountServiceAccountToken") is True, "no API token in the hub pods")
        need("tls" not in {v["name"] for v in hpod.get("volumes", [])}, "a TLS Secret volume in the hub pods")
        if rbac:
            hsa = hpod["serviceAccountName"]
            hrole = rbac_rules(objs, "Role", f"{sts['metadata']['name']}-tls", ns, hsa)
            want = normal_rules([{"apiGroups": [""], "resources": ["secrets"], "resourceNames": [secret], "verbs": ["get"]}])
            need(normal_rules(hrole) == want, f"the hub's Role (bound to {hsa}) is {hrole}, want exactly {want}")
        summary += f"; hub {sts['metadata']['name']} issues from the same Secret{' (get only)' if rbac else ''}"
    if problems:
        die(f"{path}:\n  " + "\n  ".join(problems))
    print(f"{name}: {summary}; no cert-manager for the webhook, no TLS volume, API token mounted")


def hub_args(path):
    (s,) = [o for o in load_stream(path) if o["kind"] == "StatefulSet"]
    (c,) = s["spec"]["template"]["spec"]["containers"]
    for a in c["args"]:
        if not a.startswith("--listen="):
            print(a)


def hub_watch(url, cafile, name, path):
    ctx = ssl.create_default_context(cafile=cafile)
    body = json.dumps({"names": [name], "paths": [{"path": path}], "wait_seconds": 0}).encode()
    req = urllib.request.Request(url, data=body, headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=20, context=ctx) as r:
        answer = json.load(r)
    versions = answer.get("versions", {})
    want = {f"name:{name}", f"path:{path}:r"}
    if set(versions) != want or answer.get("unavailable") or any(
            v in ("missing", "unavailable") for v in versions.values()):
        die(f"the hub's answer for {sorted(want)}: {answer}")
    print(f"versions {versions}")


def dockerfile_instructions(path):
    """(instruction, argument) pairs, continuation lines joined, comments dropped."""
    out, cur = [], ""
    with open(path) as f:
        for line in f:
            stripped = line.strip()
            if not cur and (not stripped or stripped.startswith("#")):
                continue
            if stripped.endswith("\\"):
                cur += stripped[:-1] + " "
                continue
            cur += stripped
            word, _, rest = cur.partition(" ")
            out.append((word.upper(), rest.strip()))
            cur = ""
    return out


def dockerfile_run(path, marker):
    runs = [a for i, a in dockerfile_instructions(path) if i == "RUN" and marker in a]
    if len(runs) != 1:
        die(f"{path}: expected one RUN containing {marker!r}, found {len(runs)}")
    print(runs[0])


def dockerfile_env(path):
    ins = dockerfile_instructions(path)
    last_from = max(i for i, (w, _) in enumerate(ins) if w == "FROM")
    for w, a in ins[last_from:]:
        if w == "ENV":
            k, _, v = a.partition("=")
            print(f"{k}={shlex.quote(v)}")


def main(argv):
    cmd, args = argv[0], argv[1:]
    {"validate-manifests": lambda: validate_manifests(args[0], args[1:]),
     "webhook-config": lambda: webhook_config(*args),
     "ecs-spec-env": lambda: ecs_spec_env(args),
     "ecs-run-env": lambda: ecs_run_env(*args),
     "check-ecs": lambda: check_ecs(*args),
     "free-port": free_port,
     "wait-http": lambda: wait_http(*args),
     "make-certs": lambda: make_certs(*args),
     "seed": lambda: seed(*args),
     "admission-review": lambda: admission_review(*args),
     "dockerfile-run": lambda: dockerfile_run(*args),
     "dockerfile-env": lambda: dockerfile_env(*args),
     "check-patch": lambda: check_patch(*args) if len(args) > 1 else check_patch(args[0], ""),
     "config-key": lambda: config_key(*args),
     "check-hub": lambda: check_hub(*args),
     "hub-args": lambda: hub_args(*args),
     "check-self-tls": lambda: check_self_tls(*args),
     "hub-watch": lambda: hub_watch(*args),
     }[cmd]()


if __name__ == "__main__":
    main(sys.argv[1:])
