# Sourced by docker/build.sh and docker/lock.sh, after docker/versions.env: the one check of a flavour's name and
# its pins. The name is checked before it names a variable: only a listed lowercase name (bash would evaluate a
# subscript in ${!name}).
check_flavour() {  # check_flavour SCRIPT FLAVOUR: sets `key` (FLAVOUR upper-cased, the prefix of its pins)
  [[ "$2" =~ ^[a-z][a-z0-9]{0,15}$ && ",$FLAVOURS," == *",$2,"* ]] \
    || { echo "$1: --flavour must be one of ${FLAVOURS//,/, }" >&2; exit 2; }
  key="${2^^}"
}
pin() { local name="${key}_$1"; printf '%s' "${!name-}"; }  # pin LOCK: this flavour's <FLAVOUR>_LOCK
lock_cudnn() { sed -nE 's/^nvidia-cudnn-cu[0-9]+==([^ ]+).*/\1/p' "$1" | head -n1; }  # the cuDNN a lock resolved
