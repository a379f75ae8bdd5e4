#!/usr/bin/env python3
# Usage: python3 tools/login-flood.py [target/release/gridcall]  (build with cargo build --release)
# During 64 concurrent wrong-password logins for one user, time another user's login and an
# authenticated read (release build, SQLite, default argon2 cost).
import json, subprocess, tempfile, threading, time, urllib.request, os, socket, sys
BIN = os.path.abspath(sys.argv[1] if len(sys.argv) > 1 else "target/release/gridcall")
d = tempfile.mkdtemp()
s = socket.socket(); s.bind(("127.0.0.1", 0)); port = s.getsockname()[1]; s.close()
env = dict(os.environ, GRIDCALL__SERVER__BIND=f"127.0.0.1:{port}", DATABASE_URL=f"{d}/g.db",
           GRIDCALL__MAIL__DIR=f"{d}/mail")
for u in ["victim", "bystander", "root"]:
    subprocess.run([BIN, "user", "create", "--username", u, "--role", "admin", "--password-stdin"],
                   input=b"Right-pass-2026!\n", env=env, cwd=d, check=True, capture_output=True)
srv = subprocess.Popen([BIN, "serve"], env=env, cwd=d, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
base = f"http://127.0.0.1:{port}"
for _ in range(100):
    try:
        urllib.request.urlopen(base + "/readyz"); break
    except Exception: time.sleep(0.1)
def post(path, body, token=None):
    req = urllib.request.Request(base + path, data=json.dumps(body).encode(), method="POST",
                                 headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(req) as r: return r.status, json.load(r)
    except urllib.error.HTTPError as e: return e.code, None
def get(path, token):
    req = urllib.request.Request(base + path, headers={"authorization": f"Bearer {token}"})
    with urllib.request.urlopen(req) as r: return r.status
_, t = post("/api/v1/auth/login", {"username": "root", "password": "Right-pass-2026!"})
token = t["access_token"]
codes = []
def guess(i):
    codes.append(post("/api/v1/auth/login", {"username": "victim", "password": f"wrong-{i}-guess"})[0])
threads = [threading.Thread(target=guess, args=(i,)) for i in range(64)]
for th in threads: th.start()
t0 = time.monotonic(); st, _ = post("/api/v1/auth/login", {"username": "bystander", "password": "Right-pass-2026!"}); login_s = time.monotonic() - t0
t0 = time.monotonic(); st2 = get("/api/v1/auth/me", token); me_s = time.monotonic() - t0
for th in threads: th.join()
srv.terminate(); srv.wait()
print(f"flood answers: 401={codes.count(401)} 429={codes.count(429)} other={len(codes)-codes.count(401)-codes.count(429)}")
print(f"during the flood: bystander login {st} in {login_s*1000:.0f} ms; GET /auth/me {st2} in {me_s*1000:.0f} ms")
