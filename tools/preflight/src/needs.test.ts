import { engineMissing, findMissing, ignoredTestPatterns, installLine, missingMessage, need, NEEDS, packagesFor, parseWithout, type Probe } from "./needs.ts";

/** A machine described by what it has (this is the preflight's input, not a stand-in for a service). */
function machine(has: { commands?: string[]; paths?: string[]; engine?: boolean }): Probe & { engineAsked: number } {
  const m = {
    engineAsked: 0,
    hasCommand: (c: string) => (has.commands ?? []).includes(c),
    hasPath: (p: string) => (has.paths ?? []).includes(p),
    dockerAnswers: () => {
      m.engineAsked += 1;
      return has.engine ?? false;
    },
  };
  return m;
}

test("a bare machine lacks every part; the engine is not asked while docker itself is missing", () => {
  const m = machine({});
  const missing = findMissing(NEEDS, m);
  expect(missing.map((x) => x.need.name)).toEqual(["sshd", "chromium", "nginx", "docker", "tmux", "patroni", "openssl", "postgres", "redis"]);
  expect(m.engineAsked).toBe(0);
  expect(packagesFor(missing)).toEqual(["openssh-server", "openssh-client", "chromium", "nginx", "libnginx-mod-stream", "docker.io", "docker-compose", "debootstrap", "tmux", "patroni", "etcd-server", "etcd-client", "openssl", "postgresql", "redis-server", "redis-tools"]);
  expect(engineMissing(missing)).toBe(true);
});

test("docker installed but no engine answering: nothing to install, the engine to start", () => {
  const m = machine({ commands: ["docker", "docker-compose", "debootstrap"], engine: false });
  const missing = findMissing([need("docker")], m);
  expect(packagesFor(missing)).toEqual([]);
  expect(engineMissing(missing)).toBe(true);
  expect(missingMessage(missing, { root: false })).toBe(
    [
      "pesan test: cannot run every test; missing:",
      "  docker: a running Docker engine (the Compose end-to-end tests build the images and run docker-compose.yml on a Docker engine)",
      "Start the Docker engine: sudo systemctl start docker (or, without systemd: sudo dockerd >/var/log/dockerd.log 2>&1 &)",
      "Or leave their tests out (they are then listed as untested): ./pesan test --without docker",
      "",
    ].join("\n"),
  );
});

test("the install line says what and why in one line; a need that cannot be left out is not offered to --without", () => {
  const missing = findMissing([need("tmux"), need("openssl")], machine({}));
  expect(installLine(missing)).toBe("pesan test: installing tmux openssl with apt-get (tmux: the chat CLI test types into a real terminal; openssl: the peer-sync TLS test makes its certificate)\n");
  const msg = missingMessage(missing, { root: true });
  expect(msg).toContain("Install: apt-get install -y tmux openssl\n");
  expect(msg).toContain("./pesan test --without tmux\n");
});

test("--without: names in table order, once; unknown and required names are refused", () => {
  expect(parseWithout(" tmux,docker,,tmux ")).toEqual(["docker", "tmux"]);
  expect(parseWithout(undefined)).toEqual([]);
  expect(() => parseWithout("docker,redis")).toThrow("--without: redis cannot be left out; the names are sshd, chromium, nginx, docker, tmux");
});

test("the jest patterns of a left-out need match its files and nothing else", () => {
  const patterns = ignoredTestPatterns("sshd").map((p) => new RegExp(p.replace("<rootDir>", "/repo")));
  const ignored = (f: string) => patterns.some((r) => r.test(`/repo/${f}`));
  expect(ignored("test/monitor-ssh.test.ts")).toBe(true);
  expect(ignored("test/monitor-dashboard.test.ts")).toBe(true);
  expect(ignored("test/monitor-telegram.test.ts")).toBe(false);
  expect(ignored("test/monitor-sshxtest.ts")).toBe(false);
  expect(ignoredTestPatterns("")).toEqual([]);
});
