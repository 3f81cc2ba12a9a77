#!/usr/bin/env python3
"""Interop: the AWS CLI v1 (a tool nobody on the team wrote) against `ssm-harness mock`.

Run by .ci/interop-awscli with the CLI's virtualenv on PATH. Every request the CLI sends is
SigV4-signed with fake static credentials; `ssm-harness client` is on PATH as
`session-manager-plugin`. Each check prints one line; any failure exits 1.
"""

import json
import os
import re
import subprocess
import sys
import tempfile
import time

BIN = os.path.abspath(sys.argv[1])
KEY = "AKIASSMHARNESSTEST01"
SECRET = "ssm-harness/test/secret/key/0000000000000"
TARGET = "i-0123456789abcdef0"

failures = []


def check(name, ok, detail=""):
    print(("ok    " if ok else "FAIL  ") + name + ("" if ok else f"\n      {detail}"), flush=True)
    if not ok:
        failures.append(name)


def base_env(plugin_dir):
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=KEY,
        AWS_SECRET_ACCESS_KEY=SECRET,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_EC2_METADATA_DISABLED="true",
        AWS_CONFIG_FILE=os.devnull,
        AWS_SHARED_CREDENTIALS_FILE=os.devnull,
        AWS_RETRY_MODE="standard",
        AWS_MAX_ATTEMPTS="1",
        PATH=plugin_dir + os.pathsep + env.get("PATH", ""),
    )
    env.pop("SSM_HARNESS_CLIENT_SIGN_UPGRADE", None)
    return env


class Mock:
    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [BIN, "mock", "--json", "--duration-s", "600", *args],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit("the mock did not start: " + self.proc.stderr.read())
        self.info = json.loads(line)
        self.url = self.info["endpoint_url"]

    def stop(self):
        self.proc.terminate()
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
        return self.proc.returncode


def aws(env, url, *args, stdin=None, timeout=60):
    return subprocess.run(
        ["aws", *args, "--endpoint-url", url],
        env=env,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def main():
    tmp = tempfile.mkdtemp(prefix="ssm-harness-interop-")
    plugin_dir = os.path.join(tmp, "plugin")
    os.makedirs(plugin_dir)
    os.symlink(BIN, os.path.join(plugin_dir, "session-manager-plugin"))
    # A plugin that only records what the CLI hands it: the session stays open for the API checks.
    recorder_dir = os.path.join(tmp, "recorder")
    os.makedirs(recorder_dir)
    record = os.path.join(tmp, "response.json")
    with open(os.path.join(recorder_dir, "session-manager-plugin"), "w") as f:
        f.write(
            "#!/bin/sh\n"
            'if [ "$1" = "--version" ]; then echo 1.2.764.0; exit 0; fi\n'
            f'printf "%s" "$AWS_SSM_START_SESSION_RESPONSE" > "{record}"\n'
        )
    os.chmod(os.path.join(recorder_dir, "session-manager-plugin"), 0o755)

    version = subprocess.run(["aws", "--version"], capture_output=True, text=True)
    print("using", (version.stdout or version.stderr).strip(), flush=True)

    mock = Mock()
    env = base_env(plugin_dir)
    url = mock.url

    # 1. start-session end to end: the CLI signs StartSession, runs our plugin, which opens
    # the websocket, talks to the mock's agent and exits with the session.
    r = aws(env, url, "ssm", "start-session", "--target", TARGET, stdin="hello from the aws cli\n")
    check("start-session runs session-manager-plugin end to end", r.returncode == 0 and "hello from the aws cli" in r.stdout,
          f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")

    # 2. resume-session, in every output format, on a session that is still open.
    renv = base_env(recorder_dir)
    r = aws(renv, url, "ssm", "start-session", "--target", TARGET)
    started = json.load(open(record)) if r.returncode == 0 and os.path.exists(record) else {}
    sid = started.get("SessionId", "")
    check("start-session hands the plugin SessionId, TokenValue and StreamUrl",
          set(started) == {"SessionId", "TokenValue", "StreamUrl"}, f"{r.stderr} {started}")
    r = aws(env, url, "ssm", "resume-session", "--session-id", sid, "--output", "json")
    out = json.loads(r.stdout) if r.returncode == 0 else {}
    check("resume-session --output json has SessionId, TokenValue, StreamUrl",
          out.get("SessionId") == sid and out.get("TokenValue") and out.get("StreamUrl", "").startswith("ws://"),
          f"exit {r.returncode} {r.stdout} {r.stderr}")
    check("resume-session rotates the token", out.get("TokenValue") not in (None, started.get("TokenValue")), str(out))
    r = aws(env, url, "ssm", "resume-session", "--session-id", sid, "--output", "text")
    fields = r.stdout.strip().split("\t")
    check("resume-session --output text", r.returncode == 0 and len(fields) == 3 and sid in fields, repr(r.stdout) + r.stderr)
    r = aws(env, url, "ssm", "resume-session", "--session-id", sid, "--output", "table")
    check("resume-session --output table", r.returncode == 0 and "ResumeSession" in r.stdout and "TokenValue" in r.stdout,
          r.stdout + r.stderr)

    # 3. describe-sessions shows the state; terminate; a resume after terminate is refused.
    r = aws(env, url, "ssm", "describe-sessions", "--state", "Active", "--output", "json")
    active = json.loads(r.stdout).get("Sessions", []) if r.returncode == 0 else []
    check("describe-sessions --state Active lists the open session",
          any(s.get("SessionId") == sid for s in active), r.stdout + r.stderr)
    r = aws(env, url, "ssm", "terminate-session", "--session-id", sid, "--output", "json")
    check("terminate-session", r.returncode == 0 and json.loads(r.stdout).get("SessionId") == sid, r.stdout + r.stderr)
    r = aws(env, url, "ssm", "resume-session", "--session-id", sid)
    check("resume-session after terminate-session is refused with DoesNotExistException",
          r.returncode != 0 and "DoesNotExistException" in r.stderr, f"exit {r.returncode} {r.stdout} {r.stderr}")
    r = aws(env, url, "ssm", "describe-sessions", "--state", "History", "--output", "json")
    hist = json.loads(r.stdout).get("Sessions", []) if r.returncode == 0 else []
    check("describe-sessions --state History shows it Terminated",
          any(s.get("SessionId") == sid and s.get("Status") == "Terminated" for s in hist), r.stdout + r.stderr)

    # 4. Signatures are enforced.
    bad = dict(env, AWS_SECRET_ACCESS_KEY="not-the-secret")
    r = aws(bad, url, "ssm", "describe-sessions", "--state", "Active")
    check("a wrong secret is refused with InvalidSignatureException",
          r.returncode != 0 and "InvalidSignatureException" in r.stderr, r.stderr)
    r = aws(env, url, "ssm", "describe-sessions", "--state", "Active", "--no-sign-request")
    check("an unsigned request is refused with MissingAuthenticationTokenException",
          r.returncode != 0 and "MissingAuthenticationToken" in r.stderr, r.stderr)
    unknown = dict(env, AWS_ACCESS_KEY_ID="AKIAUNKNOWNKEY000000")
    r = aws(unknown, url, "ssm", "describe-sessions", "--state", "Active")
    check("an unknown key is refused with UnrecognizedClientException",
          r.returncode != 0 and "UnrecognizedClient" in r.stderr, r.stderr)
    code = mock.stop()
    check("the mock shuts down cleanly on SIGTERM", code == 0, f"exit {code}: {mock.proc.stderr.read()}")

    # 5. The service's periodic close (1000 "Bye"): the plugin resumes through ResumeSession
    # and the output stays whole.
    mock = Mock("--bye-interval-s", "1")
    script = "".join(f"line {i}\n" for i in range(12))
    p = subprocess.Popen(["aws", "ssm", "start-session", "--target", TARGET, "--endpoint-url", mock.url],
                         env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    for i in range(12):
        p.stdin.write(f"line {i}\n")
        p.stdin.flush()
        time.sleep(0.25)
    out, err = p.communicate(timeout=60)
    body = out.replace("sh-5.2$ ", "", 1)
    opened = re.search(r"(\d+) websocket\(s\) opened", err)
    resumed = opened is not None and int(opened.group(1)) > 1
    check("start-session survives the periodic close with every line once, in order",
          p.returncode == 0 and body == script and resumed, f"exit {p.returncode}\nstdout: {out!r}\nstderr: {err}")
    mock.stop()

    # 6. TLS: https:// for the API, wss:// for the data channel, trusted through AWS_CA_BUNDLE.
    mock = Mock("--tls", "--cert-file", os.path.join(tmp, "mock.pem"))
    tenv = dict(env, AWS_CA_BUNDLE=mock.info["ca_bundle"])
    check("the TLS mock serves https://", mock.url.startswith("https://"), mock.url)
    r = aws(tenv, mock.url, "ssm", "start-session", "--target", TARGET, stdin="over tls\n")
    check("start-session over https and wss", r.returncode == 0 and "over tls" in r.stdout,
          f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    mock.stop()

    # 7. A mock that refuses unsigned websocket upgrades: the CLI cannot pass the plugin our
    # flags, so SSM_HARNESS_CLIENT_SIGN_UPGRADE=1 makes it sign them, with the CLI's credentials.
    mock = Mock("--require-ws-sigv4")
    r = aws(env, mock.url, "ssm", "start-session", "--target", TARGET, stdin="unsigned\n")
    check("without SSM_HARNESS_CLIENT_SIGN_UPGRADE the upgrade is refused and the plugin exits",
          r.returncode != 0 and "UpgradeRefused { status: 403" in r.stderr,
          f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    senv = dict(env, SSM_HARNESS_CLIENT_SIGN_UPGRADE="1")
    r = aws(senv, mock.url, "ssm", "start-session", "--target", TARGET, stdin="signed upgrade\n")
    check("start-session with SSM_HARNESS_CLIENT_SIGN_UPGRADE=1 against --require-ws-sigv4",
          r.returncode == 0 and "signed upgrade" in r.stdout,
          f"exit {r.returncode}\nstdout: {r.stdout}\nstderr: {r.stderr}")
    mock.stop()

    if failures:
        print(f"{len(failures)} interop check(s) failed: {', '.join(failures)}")
        return 1
    print("every interop check passed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
