#!/bin/sh
# Writes Redis's ACL file from deploy/redis/users.acl: {{NAME}} becomes the SHA-256 of the password in
# the environment variable NAME; a user whose variable is unset or empty is written switched off (it
# cannot log in). Comments go. The result is mode 0600 and holds no password; no password is ever on a
# command line here (printf is a shell builtin; sha256sum reads it from a pipe).
# Usage: render-acl.sh TEMPLATE OUTPUT
set -eu
template=$1
output=$2
umask 077
tmp="$output.tmp.$$"
: > "$tmp"
grep -v '^#' "$template" | grep -v '^[[:space:]]*$' | while IFS= read -r line; do
    case $line in
    *'{{'*'}}'*)
        name=${line#*\{\{}
        name=${name%%\}\}*}
        case $name in
        '' | *[!A-Z0-9_]*) echo "render-acl: bad placeholder {{$name}} in $template" >&2; exit 1 ;;
        esac
        eval "value=\${$name:-}"
        if [ -n "$value" ]; then
            hash=$(printf '%s' "$value" | sha256sum | cut -d' ' -f1)
            line=$(printf '%s\n' "$line" | sed "s/{{$name}}/$hash/")
        else
            echo "render-acl: $name is not set: that user is switched off" >&2
            line=$(printf '%s\n' "$line" | sed "s/ on #{{$name}}/ off resetpass/")
        fi
        ;;
    esac
    printf '%s\n' "$line" >> "$tmp"
done
mv "$tmp" "$output"
