#!/usr/bin/env bash
# Kaldi-style option parsing for steps/ scripts. Source it after the configuration
# section of plain name=value defaults:
#
#   nj=4
#   cmd=steps/run.py
#   . steps/parse_options.sh || exit 1
#
# Then `--nj 8 --cmd "steps/run.py --max-jobs-run 2"` overrides the defaults. Dashes in
# option names map to underscores (--max-active -> max_active). An option with no
# default in the script is an error. `--config FILE` sources FILE (name=value lines),
# unless the script has its own `config` variable (then --config sets it, like any option). `--help` or `-h` prints $help_message (the script's usage text) and exits.
# Positional arguments are left in "$@".

while true; do
  [ -z "${1:-}" ] && break
  case "$1" in
    --help|-h)
      if [ -z "${help_message:-}" ]; then echo "No help found." 1>&2; else printf '%s\n' "$help_message" 1>&2; fi
      exit 0 ;;
    --config)
      if [ -n "${config+x}" ]; then config=$2; shift 2; continue; fi
      [ $# -ge 2 ] || { echo "$0: --config needs a file" 1>&2; exit 1; }
      [ -f "$2" ] || { echo "$0: config file $2 does not exist" 1>&2; exit 1; }
      . "$2" || exit 1
      shift 2 ;;
    --*=*)
      echo "$0: write options as '--name value', not '$1'" 1>&2; exit 1 ;;
    --*)
      __name=$(echo "${1#--}" | sed 's/-/_/g')
      if [ -z "$(eval echo \${$__name+x})" ]; then
        echo "$0: invalid option $1" 1>&2
        [ -n "${help_message:-}" ] && printf '%s\n' "$help_message" 1>&2
        exit 1
      fi
      [ $# -ge 2 ] || { echo "$0: option $1 needs a value" 1>&2; exit 1; }
      __old=$(eval echo \$$__name)
      if [ "$__old" = true ] || [ "$__old" = false ]; then
        case "$2" in true|false) ;; *) echo "$0: option $1 takes true or false, got '$2'" 1>&2; exit 1 ;; esac
      fi
      printf -v "$__name" '%s' "$2"
      shift 2 ;;
    *) break ;;
  esac
done
unset __name __old
true
