#!/usr/bin/env node
/** `pnpm nginx:render`: writes the Compose nginx configs (nginx/*.conf) from the template. */
import { writeFileSync } from "node:fs";
import { join } from "node:path";
import { parseCommandLine } from "@pesan/shared/cli";
import { REPO_ROOT } from "./cluster.ts";
import { COMPOSE_NGINX_FILES, composeNginxConfig } from "./nginx.ts";

const USAGE = `usage: pnpm nginx:render [--help] [--version]\nRenders nginx/nginx.conf.template into ${Object.keys(COMPOSE_NGINX_FILES).join(", ")} (used by the Compose files).\n`;

if (parseCommandLine(process.argv.slice(2), { usage: USAGE })) {
  for (const name of Object.keys(COMPOSE_NGINX_FILES)) {
    const file = join(REPO_ROOT, "nginx", name);
    writeFileSync(file, composeNginxConfig(name));
    process.stdout.write(`wrote ${file}\n`);
  }
}
