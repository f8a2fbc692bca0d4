# Sourced by the experiment scripts that train shipped policies in stages.

# Trains save_name with the given flags: resumes it if it has a resume checkpoint (a finished
# study resumes to no work), otherwise starts it afresh, replacing any policy of that name.
train() {
    local name=$1; shift
    local again=--overwrite=true
    [ -f "trained_models/$name.last.pt" ] && again=--resume=true
    python run.py --save_name="$name" "$@" "$again" --quiet=true
}
