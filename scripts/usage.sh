# Sourced first by the scripts in this folder (`. "$(dirname "$0")/usage.sh"`, so it sees their arguments): with -h or
# --help among them, prints the script's opening comment (its usage) and exits 0. A script that takes no arguments then
# calls `takes_no_arguments "$@"`.
print_usage() { sed -n '2,${/^#/!q;s/^# \{0,1\}//p;}' "$0"; }
for argument in "$@"; do case "$argument" in -h|--help) print_usage; exit 0 ;; esac; done
takes_no_arguments() {
  [ $# -eq 0 ] && return
  echo "$(basename "$0") takes no arguments (not: $*). Its usage:" >&2
  print_usage >&2
  exit 2
}
