#!/bin/sh
# test_tui_terminal.sh — the playground and its terminal, driven in tmux from a
# shell: `deftree` with no arguments opens it; keys are answered and cancel
# works while a long generation runs; quitting with an unsaved tree asks
# first; every way out (quit, SIGTERM, a fatal SIGSEGV) leaves the alternate
# screen and gives back the terminal settings the shell had; SIGTERM keeps
# the tree in the autosave; colours follow the terminal (256, 8) and NO_COLOR.
. "${DT_TOP_SRCDIR:-.}/tests/ui/lib.sh"
need_tools
command -v pgrep >/dev/null 2>&1 || skip_all "pgrep (procps) is not installed"
LC_ALL=C.UTF-8
export LC_ALL
STATE="$TMP/xdg/deftree"

start 100 30 "sh" || skip_all "tmux cannot start a session"
wait_for '^\$' 10

alt_on() {
	$T display -p -t t '#{alternate_on}'
}
shell_pid=$($T display -p -t t '#{pane_pid}')
deftree_pid() {
	pgrep -P "$shell_pid" 2>/dev/null | head -n 1
}
# mark: the shell prints a fresh marker (computed by the shell, so only its
# output matches, not the command line) and we wait for it
round=0
mark() {
	round=$((round + 1))
	keys "echo MARKER-\$((1000+$round))" Enter
	wait_for "MARKER-$((1000 + round))" 10 || { diag "no marker $((1000 + round)) on the screen:"; screen | sed 's/^/#   /'; }
}
keys "stty -g > $TMP/stty.before" Enter
mark
# back_at_shell MESSAGE: the playground has exited, the shell's screen and stty are back
back_at_shell() {
	deadline=$(($(now_ms) + 20000))
	while { [ "$(alt_on)" != 0 ] || [ -n "$(deftree_pid)" ]; } && [ "$(now_ms)" -lt "$deadline" ]; do
		sleep 0.05
	done
	[ "$(alt_on)" = 0 ] && [ -z "$(deftree_pid)" ] && wait_for "MARKER-$((1000 + round))" 5
	ok $? "$1: the alternate screen is left, the shell's screen is back"
	keys "stty -g > $TMP/stty.after" Enter
	mark
	cmp -s "$TMP/stty.before" "$TMP/stty.after"
	ok $? "$1: the terminal settings are the shell's again"
}

# ---- no arguments: the playground (the model from DEFTREE_MODEL)
keys "$BIN --max-tokens 400" Enter
wait_for 'loaded SmolLM2' 60
ok $? "deftree with no command opens the playground on a terminal"
[ "$(alt_on)" = 1 ]
ok $? "it runs on the alternate screen"

# ---- while a long answer grows: keys are answered, cancel stops it
keys p
wait_for 'chat>' 10
type_text "Tell me a long story about a lighthouse keeper"
keys Enter
wait_for 'generating [0-9]+/400' 60
ok $? "generation runs (the status line counts the steps)"
keys '?'
wait_for '^ move$' 10
busy=$(row 0 | grep -c ' idle *$')
[ "$busy" = 0 ]
ok $? "? shows the help while the engine is still generating"
keys Escape
wait_for '^ Tree · ' 10
keys C-c
wait_for 'cancelled after [0-9]+ steps' 20
ok $? "Ctrl-C cancels the running generation"
wait_idle 20
ok $? "the engine is idle after the cancel"

# ---- quitting an unsaved tree asks first
keys q
wait_for 'The tree is not saved' 10
ok $? "q on an unsaved tree asks before quitting"
keys Escape
wait_for 'not quitting' 10
ok $? "Esc keeps the session"
keys q
wait_for 'The tree is not saved' 10
keys n
back_at_shell "quit"
[ -s "$STATE/autosave.json" ] && grep -q '"deftree-session"' "$STATE/autosave.json"
ok $? "the tree was autosaved on the way out ($STATE/autosave.json)"

# ---- SIGTERM: autosave, then the terminal back
keys "$BIN --max-tokens 6" Enter
wait_for 'the last session.s tree was autosaved' 60
ok $? "the next start offers the autosaved tree"
wait_idle 60
keys : ; type_text recover; keys Enter
wait_for 'opened .*autosave.prev.json' 60
ok $? ":recover opens it"
rm -f "$STATE/autosave.json"
pid=$(deftree_pid)
kill -TERM "$pid" 2>/dev/null
back_at_shell "SIGTERM"
[ -s "$STATE/autosave.json" ]
ok $? "SIGTERM wrote the autosave before leaving"
grep -q '^recover$' "$STATE/tui_history" 2>/dev/null
ok $? "the command history is kept for the next session ($STATE/tui_history)"

# ---- a fatal signal still restores the terminal
keys "$BIN" Enter
wait_for 'loaded SmolLM2' 60
pid=$(deftree_pid)
kill -SEGV "$pid" 2>/dev/null
back_at_shell "SIGSEGV"

# ---- colours: NO_COLOR, then an 8-colour terminal
keys "NO_COLOR=1 $BIN" Enter
wait_for 'loaded SmolLM2' 60
$T capture-pane -e -p -t t >"$TMP/nocolor.txt"
! grep -Eq '[[;](3[0-7]|4[0-7]|38;5;[0-9]+|48;5;[0-9]+)(;[0-9]+)*m' "$TMP/nocolor.txt"
ok $? "NO_COLOR: no colour codes on the screen"
grep -Eq '\[([0-9]+;)*7m' "$TMP/nocolor.txt"
ok $? "NO_COLOR: reverse video still marks the bars"
keys : ; type_text "q"; keys Enter
back_at_shell "NO_COLOR quit"
keys "TERM=tmux-256color $BIN" Enter
wait_for 'loaded SmolLM2' 60
$T capture-pane -e -p -t t >"$TMP/color256.txt"
grep -Eq '[34]8;5;[0-9]+' "$TMP/color256.txt"
ok $? "TERM=tmux-256color: the 256-colour palette"
keys q
back_at_shell "256-colour quit"
keys "TERM=xterm $BIN" Enter
wait_for 'loaded SmolLM2' 60
$T capture-pane -e -p -t t >"$TMP/color8.txt"
grep -Eq '[[;](3[0-7]|4[0-7])(;[0-9]+)*m' "$TMP/color8.txt" && ! grep -Eq '[34]8;5;' "$TMP/color8.txt"
ok $? "TERM=xterm: the 8-colour palette"
keys q
back_at_shell "8-colour quit"
done_testing
