# bash completion for ckpt, restart, readckpt and ckpt-slurm.
# Installed as .../bash-completion/completions/ckpt, with restart, readckpt
# and ckpt-slurm as links to it (bash-completion loads a file by command name).

# Index of the first word that is not an option or an option's value: the
# program; 0 if there is none yet. $1: the options that take a value.
_ckpt_program_index() {
    local i w takes=" $1 "
    for ((i = 1; i < COMP_CWORD; i++)); do
        w=${COMP_WORDS[i]}
        if [[ $w == -- ]]; then
            echo $((i + 1)); return
        elif [[ $takes == *" $w "* ]]; then
            ((i++))
        elif [[ $w != -* ]]; then
            echo "$i"; return
        fi
    done
    echo 0
}

_ckpt_common() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    local opts=$1 takes=$2 prog
    prog=$(_ckpt_program_index "$takes")
    if ((prog > 0 && COMP_CWORD > prog)); then
        # The program's own arguments.
        if declare -F _command_offset >/dev/null; then
            _command_offset "$prog"
        else
            COMPREPLY=($(compgen -f -- "$cur"))
        fi
        return
    fi
    case $prev in
        -o | --output) COMPREPLY=($(compgen -f -- "$cur")); return ;;
        -s | --signal | -w | --warning)
            COMPREPLY=($(compgen -W "USR1 USR2 HUP INT TERM URG XCPU XFSZ VTALRM PROF WINCH RTMIN+1 RTMIN+2" -- "$cur"))
            return ;;
        -i | --interval | --keep | --max-chain) return ;;
    esac
    if [[ $cur == --portable=* ]]; then
        COMPREPLY=($(compgen -P --portable= -W "x86-64 x86-64-v2 x86-64-v3 x86-64-v4" -- "${cur#--portable=}"))
    elif [[ $cur == --compress=* ]]; then
        COMPREPLY=($(compgen -P --compress= -W "lz4" -- "${cur#--compress=}"))
    elif [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$opts" -- "$cur"))
    else
        COMPREPLY=($(compgen -c -- "$cur") $(compgen -f -- "$cur"))
    fi
}

_ckpt() {
    _ckpt_common "-o --output --continue --no-cow -i --interval --keep --incremental --max-chain -s --signal --portable
        --portable= --strict --tree --no-tree --compress --compress= --allow-foreign-output --release-locks -q --quiet
        -v --verbose -h --help -V --version" "-o --output -i --interval --keep --max-chain -s --signal"
}

_ckpt_slurm() {
    _ckpt_common "-o --output -w --warning --keep-images --continue --no-cow -i --interval --keep --incremental
        --max-chain --strict -s --signal --portable --portable= --tree --no-tree --release-locks --compress --compress=
        --allow-foreign-output
        -q --quiet -v --verbose -h --help -V --version" \
        "-o --output -w --warning -i --interval --keep --max-chain -s --signal"
}

# An image and options: $1, the options.
_ckpt_image() {
    local cur=${COMP_WORDS[COMP_CWORD]}
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$1" -- "$cur"))
    else
        COMPREPLY=($(compgen -f -- "$cur"))
    fi
}

_ckpt_restart() { _ckpt_image "--keep-stdio --strict --trust-image --exact-pids --new-pids -v --verbose -h --help -V --version"; }
_ckpt_readckpt() { _ckpt_image "--json --verify -h --help -V --version"; }

complete -o filenames -F _ckpt ckpt
complete -o filenames -F _ckpt_slurm ckpt-slurm
complete -o filenames -F _ckpt_restart restart
complete -o filenames -F _ckpt_readckpt readckpt
