#!/bin/sh
# zfleet-lab bench: bind-mounted over /usr/sbin/@TOOL@ inside one lab host, so
# every call of @TOOL@ on that host, whoever makes it (zfleet, syncoid,
# zfs-autobackup, or a command arriving over ssh), is counted in @LOG@.
#
# It also translates the listing options zfs-fuse (pool version 23) lacks and
# the peers use, so that they can run at all:
# - `zfs get -t TYPES`: run without `-t`, output filtered by type. (syncoid
#   lists snapshots so; its fallback for a source over ssh is broken in 2.1.0:
#   it puts the ssh command in front twice.)
# - `zpool get [-H] [-p] [-o FIELDS]`: zfs-fuse's `zpool get` takes no
#   options; its table is turned into what the options ask for.
# - `zfs get -o property,value all NAME` (zfs-autobackup reads a dataset's
#   or snapshot's properties so, and then `guid` and `encryption` without a
#   default): zfs-fuse leaves `guid` out of `all`, so it is added, and so is
#   `encryption off`, which is what it is on a pool without the feature.
# Everything else runs unchanged through `exec`.
printf '%s\n' "$*" >> @LOG@
real=@REAL@
case "@TOOL@ $1" in
  "zfs get"|"zpool get") ;;
  *) exec "$real" "$@" ;;
esac
shift
types=
fields=
opts=
all=
pv=
n=$#
while [ "$n" -gt 0 ]; do
  a=$1
  shift
  n=$((n - 1))
  case "@TOOL@ $a" in
    "zfs -t") types=$1; shift; n=$((n - 1)); continue ;;
    "zpool -o") fields=$1; shift; n=$((n - 1)); continue ;;
    "zpool -H"|"zpool -p"|"zpool -Hp"|"zpool -pH") opts=1; continue ;;
    "zfs all") all=1 ;;
    "zfs property,value") pv=1 ;;
  esac
  set -- "$@" "$a"
done
if [ -n "$all" ] && [ -n "$pv" ]; then
  for name in "$@"; do :; done
  "$real" get "$@" || exit $?
  "$real" get -H -p -o property,value guid "$name" || exit $?
  printf 'encryption\toff\n'
  exit 0
fi
if [ -z "$types" ] && [ -z "$fields" ] && [ -z "$opts" ]; then
  exec "$real" get "$@"
fi
out=$("$real" get "$@") || exit $?
[ -n "$out" ] || exit 0
if [ "@TOOL@" = zfs ]; then
  printf '%s\n' "$out" | awk -F '\t' -v types="$types" '
    {
      k = "filesystem"
      if (index($1, "@")) k = "snapshot"
      else if (index($1, "#")) k = "bookmark"
      n = split(types, t, ",")
      for (i = 1; i <= n; i++)
        if (t[i] == k || t[i] == "all" || (t[i] == "volume" && k == "filesystem")) { print; next }
    }'
else
  # NAME PROPERTY VALUE SOURCE, columns padded with spaces; a value may hold
  # spaces, the other columns do not.
  printf '%s\n' "$out" | awk -v fields="${fields:-name,property,value,source}" '
    NR == 1 { next }
    {
      v = $3
      for (i = 4; i < NF; i++) v = v " " $i
      col["name"] = $1; col["property"] = $2; col["value"] = v; col["source"] = $NF
      n = split(fields, f, ",")
      line = ""
      for (i = 1; i <= n; i++) line = line (i > 1 ? "\t" : "") col[f[i]]
      print line
    }'
fi
