#!/usr/bin/env bash
# The enforcer loads under glibc 2.17 or newer: no symbol it imports may need
# a newer version, and it must name libdl and libpthread, where glibc before
# 2.34 keeps dlopen and pthread_once.
set -u
lib=$1
floor=2.17
bad=$(objdump -T "$lib" | awk '/\*UND\*/ && match($0, /GLIBC_[0-9.]+/) { print substr($0, RSTART + 6, RLENGTH - 6), $NF }' |
	while read -r ver sym; do
		if [ "$(printf '%s\n%s\n' "$ver" "$floor" | sort -V | tail -n1)" != "$floor" ]; then echo "$sym@GLIBC_$ver"; fi
	done)
needed=$(objdump -p "$lib" | awk '/NEEDED/ { print $2 }')
ok=1
if [ -n "$bad" ]; then echo "FAIL glibc floor $floor: $lib imports" $bad; ok=0; fi
for so in libdl.so.2 libpthread.so.0; do
	if ! grep -qx "$so" <<<"$needed"; then echo "FAIL glibc floor: $lib does not name $so"; ok=0; fi
done
max=$(objdump -T "$lib" | grep -o 'GLIBC_[0-9.]*' | sort -V | tail -n1)
if [ $ok = 1 ]; then echo "ok   glibc floor $floor: newest symbol version imported is $max"; exit 0; fi
exit 1
