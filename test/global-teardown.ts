export default async function globalTeardown(): Promise<void> {
  await (globalThis as { __pesanStop?: () => Promise<void> }).__pesanStop?.();
}
