#!/usr/bin/env node
/** `pnpm nginx:render`: writes the Compose nginx configs (nginx/*.conf) from the template. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { REPO_ROOT } from "./cluster.ts";
import { COMPOSE_NGINX_FILES, composeNginxConfig } from "./nginx.ts";

if (process.argv.includes("--help") || process.argv.includes("-h")) {
  process.stdout.write(`usage: pnpm nginx:render\nRenders nginx/nginx.conf.template into ${Object.keys(COMPOSE_NGINX_FILES).join(", ")} (used by the Compose files).\n`);
} else {
  for (const name of Object.keys(COMPOSE_NGINX_FILES)) {
    const file = join(REPO_ROOT, "nginx", name);
    writeFileSync(file, composeNginxConfig(name));
    process.stdout.write(`wrote ${file}\n`);
  }
}
