/**
 * Runs a command in a network namespace whose only interface is loopback (up), as root or not.
 * Root: `unshare -n`. A normal user cannot create a network namespace alone, so: a user namespace
 * as "root" (`unshare -rn`) brings loopback up, then a nested user namespace maps back to the
 * caller's own uid/gid, so that what runs inside is not root (embedded Postgres must see its
 * real, unprivileged user). Needs util-linux >= 2.38 (`--map-user`) and user namespaces.
 */
export function noNetwork(command: string[]): { cmd: string; args: string[] } {
  const inner = 'ip link set lo up && exec "$@"';
  const uid = process.getuid?.() ?? 0;
  const gid = process.getgid?.() ?? 0;
  if (uid === 0) return { cmd: 'unshare', args: ['-n', 'sh', '-c', inner, 'sh', ...command] };
  return {
    cmd: 'unshare',
    args: ['-rn', 'sh', '-c', inner, 'sh', 'unshare', '-U', `--map-user=${uid}`, `--map-group=${gid}`, ...command],
  };
}
