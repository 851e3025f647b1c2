export { startCluster, freePorts, ServiceProcess, embeddedEnv, REPO_ROOT, NODE_FLAGS, type Cluster, type ClusterOptions, type Role } from "./cluster.ts";
export { renderNginxConfig, composeNginxConfig, COMPOSE_NGINX_FILE, COMPOSE_NGINX_FILES, NginxProcess, nginxAvailable, type NginxLayout } from "./nginx.ts";
export { startTopology, type Topology } from "./topology.ts";
