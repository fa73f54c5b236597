# lib.sh — shared by the tmux-driven UI tests (sourced, POSIX sh).
#
# Each test starts the real binary ($DT_TOP_BUILDDIR/deftree) with the
# default model in a detached tmux session of a fixed size on its own
# socket, sends keys, and polls `capture-pane` until the expected text shows
# up or a deadline passes (no fixed sleeps).  TAP on stdout; SKIP when tmux,
# the binary or the model is missing.

T_FAILED=0
T_RUN=0
BIN="${DT_TOP_BUILDDIR:-.}/deftree"
SRCDIR="${DT_TOP_SRCDIR:-.}"
if [ -n "$DEFTREE_MODEL" ] && [ -r "$DEFTREE_MODEL" ]; then
	MODEL="$DEFTREE_MODEL"
else
	MODEL="$SRCDIR/models/SmolLM2-135M-Instruct.Q4_1.gguf"
fi

skip_all() {
	echo "1..0 # SKIP $1"
	exit 0
}

need_tools() {
	command -v tmux >/dev/null 2>&1 || skip_all "tmux is not installed"
	[ -x "$BIN" ] || skip_all "no deftree binary at $BIN"
	[ -r "$MODEL" ] || skip_all "no model at $MODEL (./bootstrap fetches it)"
	locale -a 2>/dev/null | grep -qi '^c\.utf-\?8$' || skip_all "no C.UTF-8 locale"
}

ok() { # ok CONDITION-STATUS MESSAGE
	T_RUN=$((T_RUN + 1))
	if [ "$1" -eq 0 ]; then
		echo "ok $T_RUN - $2"
	else
		echo "not ok $T_RUN - $2"
		T_FAILED=$((T_FAILED + 1))
		echo "# screen at the failure:"
		screen | sed 's/^/#   /'
	fi
}

diag() {
	echo "# $*"
}

done_testing() {
	echo "1..$T_RUN"
	[ "$T_FAILED" -eq 0 ]
	exit $?
}

# ---- tmux

TMP=$(mktemp -d "${TMPDIR:-/tmp}/deftree-ui-XXXXXX")
SOCK="deftree-test-$$"
T="tmux -u -L $SOCK -f /dev/null"

cleanup() {
	$T kill-server >/dev/null 2>&1
	rm -f "${TMUX_TMPDIR:-/tmp}/tmux-$(id -u)/$SOCK"
	rm -rf "$TMP"
}
trap cleanup EXIT INT TERM

# start W H COMMAND: a new session running COMMAND (through sh -c)
start() {
	$T kill-server >/dev/null 2>&1
	$T new-session -d -s t -x "$1" -y "$2" \
		"env LC_ALL=C.UTF-8 TERM=${TEST_TERM:-screen} DEFTREE_MODEL='$MODEL' XDG_STATE_HOME='$TMP/xdg' XDG_CONFIG_HOME='$TMP/xdgconf' HOME='$TMP' PS1='$ ' $3" || return 1
	$T set-option -t t remain-on-exit on >/dev/null 2>&1
	return 0
}

screen() {
	$T capture-pane -p -t t 2>/dev/null
}

# row N (0-based) of the screen
row() {
	screen | sed -n "$(($1 + 1))p"
}

keys() {
	$T send-keys -t t "$@"
}

# text typed literally (no key names)
type_text() {
	$T send-keys -t t -l "$1"
}

now_ms() {
	date +%s%3N
}

# wait_for PATTERN [SECONDS]: poll the screen until grep -E finds PATTERN
wait_for() {
	deadline=$(($(now_ms) + ${2:-30} * 1000))
	while :; do
		if screen | grep -Eq -- "$1"; then
			return 0
		fi
		[ "$(now_ms)" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

# wait_gone PATTERN [SECONDS]
wait_gone() {
	deadline=$(($(now_ms) + ${2:-30} * 1000))
	while :; do
		if ! screen | grep -Eq -- "$1"; then
			return 0
		fi
		[ "$(now_ms)" -ge "$deadline" ] && return 1
		sleep 0.05
	done
}

# wait_idle [SECONDS]: the header says idle (no job running)
wait_idle() {
	wait_for '^ deftree .* idle *$' "${1:-60}"
}

# the KV pane's used page count ("pages N/M")
pages_used() {
	screen | sed -n 's/.*pages \([0-9]*\)\/[0-9]*.*/\1/p' | head -n 1
}
