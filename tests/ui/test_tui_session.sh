#!/bin/sh
# test_tui_session.sh — a whole session in the terminal playground, driven in tmux:
# prompt and streaming, sample-n, an algorithm switch that changes the IO
# figures, a fork at the token cursor, a prune that frees KV pages, save then
# open restoring the same tree, a hostile session file and a bad command
# refused with a message, the backend switch (cuda where a GPU is, else the
# reason), mouse clicks selecting nodes, resizing (three columns, too small,
# back), and quit.
. "${DT_TOP_SRCDIR:-.}/tests/ui/lib.sh"
need_tools
LC_ALL=C.UTF-8
export LC_ALL

start 120 40 "$BIN tui --state-dir '$TMP/state' --max-tokens 24 --grow 4 --seed 11 --kv-budget 64; echo DEFTREE-EXIT=\$?; sleep 600" ||
	skip_all "tmux cannot start a session"
wait_for 'loaded SmolLM2' 60
ok $? "the playground starts on the default model"
wait_idle 60
ok $? "the header says idle once the model is in"

# ---- prompt: the answer streams into the tree and the text pane
keys p
wait_for 'chat>' 10
ok $? "p opens the prompt line"
type_text "Name three colours"
keys Enter
seen=""
deadline=$(($(now_ms) + 60000))
while [ "$(now_ms)" -lt "$deadline" ]; do
	s=$(screen)
	n=$(printf '%s\n' "$s" | sed -n '4s/.* \([0-9][0-9]*\)│.*/\1/p')
	if printf '%s\n' "$s" | sed -n 1p | grep -q ' idle *$'; then
		[ -n "$n" ] && break
	elif [ -n "$n" ]; then
		case " $seen " in *" $n "*) ;; *) seen="$seen $n" ;; esac
	fi
	sleep 0.02
done
diag "token counts of the answer seen while generating:$seen"
set -- $seen
[ $# -ge 2 ]
ok $? "the answer grows while the screen updates (saw $# different lengths)"
wait_for 'steps in' 60
ok $? "the status line reports the steps"
screen | grep -q '<|im_start|>assistant'
ok $? "the text pane shows the chat-formatted path"
row 1 | grep -q 'Tree · 2 nodes'
ok $? "two nodes: the prompt and the answer"

# ---- sample-n: three children of the answer
keys 3 s
wait_for 'Tree · 5 nodes · 3 live' 60
ok $? "3s samples three live children"
wait_idle 60
screen | grep -Eq '│seq +[0-9.]+ [KM]iB +-[0-9]+%'
ok $? "with three branches deft-flatten reads less KV than seq (a negative percentage)"
screen | grep -q 'inter 0 B'
ok $? "deft-flatten writes no intermediates (inter 0 B)"
screen | grep -Eq 'next step KV: seq [0-9.]+[KMG] +node'
ok $? "the stats compare the algorithms on this tree"

# ---- bookmarks and search
sel() {
	screen | sed -n 's/.* #\([0-9]*\) [a-z]* · token.*/\1/p' | tail -n 1
}
mark_node=$(sel)
keys m a g
wait_for ' #[0-9]+ inner · token' 10
keys "'" a
wait_for " #$mark_node [a-z]+ · token" 10
ok $? "m a bookmarks #$mark_node, ' a comes back to it"
keys / ; type_text "colour"; keys Enter
wait_for "'colour': match 1 of [0-9]+" 10 || wait_for "'colour' is not in the tree" 1
ok $? "/ searches the tree's text and says what it found"

# ---- algorithm switch: tree-mask, then seq
keys : ; type_text "algo tree-mask"; keys Enter
wait_for 'attention algorithm: tree-mask' 10
ok $? ":algo tree-mask is taken"
keys E
wait_for '│mask +[0-9.]+ [KM]iB' 60
ok $? "the next steps are measured under tree-mask"
wait_idle 60
screen | grep -Eq 'inter [0-9.]+ [KM]iB'
ok $? "tree-mask writes intermediates: the other-IO line changes"
keys : ; type_text "algo seq"; keys Enter
wait_for 'attention algorithm: seq' 10
keys E
wait_for '│seq +[0-9.]+ [KM]iB +\+0%' 60
ok $? "under seq the last step reads exactly what seq reads (+0%)"
wait_idle 60

# ---- backend: B toggles to cuda (a GPU) or says why it cannot; a bad name is refused
keys B
wait_for 'attention on cuda: |backend cuda: .*attention stays on cpu' 60
ok $? "B switches attention to cuda, or says why not: $(screen | grep -Eo 'attention on cuda: .{0,40}|backend cuda: .{0,60}' | head -n 1)"
if screen | grep -q 'attention on cuda: '; then
	wait_idle 60
	keys E
	wait_for 'GPU attn [0-9.]+ [mun]?s: KV .* of device copy' 60
	ok $? "on cuda the stats show the GPU roofline line"
	wait_idle 60
	keys : ; type_text "backend cpu"; keys Enter
	wait_for 'attention on cpu' 20
	ok $? ":backend cpu goes back to the cpu"
fi
keys : ; type_text "backend tpu"; keys Enter
wait_for "unknown backend 'tpu'" 10
ok $? ":backend with a bad name is refused with the choices"

# ---- fork at the token cursor
nodes_before=$(row 1 | sed -n 's/.*Tree · \([0-9]*\) nodes.*/\1/p')
keys Tab h h f
wait_for "Tree · $((nodes_before + 2)) nodes" 60
ok $? "f forks at the token cursor: the node splits and a branch starts ($nodes_before -> $((nodes_before + 2)) nodes)"
wait_idle 60

# ---- prune frees pages
p0=$(pages_used)
keys d
wait_for 'pruned #[0-9]+: .* [1-9][0-9]* pages freed' 30
ok $? "d prunes the new branch and says how many pages came back"
p1=$(pages_used)
[ -n "$p0" ] && [ -n "$p1" ] && [ "$p1" -lt "$p0" ]
ok $? "the KV pane counts fewer pages in use ($p0 -> $p1)"
screen | grep -q '✗'
ok $? "the pruned branch stays in the outline, marked"

# ---- save, a new tree, open: the same tree again
keys D
wait_for 'pruned branches hidden' 10
keys : ; type_text "save $TMP/s.json"; keys Enter
wait_for 'saved [0-9]+ nodes' 30
ok $? ":save writes the session"
tree_rows() {
	screen | sed -n '2,21p' | sed 's/^\(.\{50\}\).*/\1/'
}
tree_rows >"$TMP/tree.saved"
keys p; type_text "Hi"; keys Enter
wait_for 'Tree · 2 nodes' 60
wait_idle 60
tree_rows >"$TMP/tree.other"
! cmp -s "$TMP/tree.saved" "$TMP/tree.other"
ok $? "a new prompt replaces the tree"
keys : ; type_text "open $TMP/s.json"; keys Enter
wait_for 'opened .*s.json' 60
ok $? ":open reads the session back"
wait_idle 60
tree_rows >"$TMP/tree.opened"
cmp -s "$TMP/tree.saved" "$TMP/tree.opened"
ok $? "the opened tree is the saved one, row for row"
[ $T_FAILED -eq 0 ] || diff "$TMP/tree.saved" "$TMP/tree.opened" | sed 's/^/# /'

# ---- refused input keeps the session
printf '{"format":"deftree-session","version":1,"root":0,"nodes":[{"id":0,"parent":3}]}' >"$TMP/bad.json"
keys : ; type_text "open $TMP/bad.json"; keys Enter
wait_for 'open: .*bad.json' 30
ok $? "a broken session file is refused with a message naming it"
tree_rows >"$TMP/tree.after_bad"
cmp -s "$TMP/tree.saved" "$TMP/tree.after_bad"
ok $? "the tree is kept after the refused file"
keys : ; type_text "frobnicate 3"; keys Enter
wait_for "unknown command 'frobnicate'" 10
ok $? "a bad command gets a message"
keys : ; type_text "set temp -1"; keys Enter
wait_for 'set: .*temp' 10
ok $? "a bad setting value gets the sampler's message"

# ---- export, the command line's completion and history
keys : ; type_text "export json $TMP/t.json"; keys Enter
wait_for "exported json to" 30
grep -q '"text"' "$TMP/t.json" 2>/dev/null
ok $? ":export json writes the tree with its text"
keys : ; type_text "export dot $TMP/t.dot"; keys Enter
wait_for "exported dot to" 30
grep -q 'digraph' "$TMP/t.dot" 2>/dev/null
ok $? ":export dot writes a Graphviz drawing"
keys : ; type_text "expo"; keys Tab
wait_for '^:export$' 10
ok $? "Tab completes a command name"
keys C-u; type_text "set top-"; keys Tab Tab
wait_for 'top-k +top-p' 10
ok $? "Tab lists the settings that match"
keys Escape : Up
wait_for "^:export dot $TMP/t.dot" 10
ok $? "Up recalls the previous command line"
keys Escape

# ---- replay: a workload shape, IO-only, then back
keys : ; type_text "replay fewshot:64:3:12"; keys Enter
wait_for 'replay of fewshot.* done: 12 steps' 60
ok $? ":replay animates a few-shot shape to its end"
screen | grep -Eq 'Tree · 4 nodes · 0 live'
ok $? "the replayed tree: a prompt and three branches"
keys Escape
wait_for "back to the model's tree" 10
ok $? "Esc returns to the model's tree"
wait_idle 30
tree_rows >"$TMP/tree.after_replay"
cmp -s "$TMP/tree.saved" "$TMP/tree.after_replay"
ok $? "the model's tree is as it was before the replay"

# ---- mouse: a click on a tree row selects its node (xterm X10 mouse report, as TERM=screen has it)
click() { # click X Y (0-based cells): a button-1 press and release
	$T send-keys -t t -H 1b 5b 4d 20 "$(printf '%x' $((33 + $1)))" "$(printf '%x' $((33 + $2)))"
	$T send-keys -t t -H 1b 5b 4d 23 "$(printf '%x' $((33 + $1)))" "$(printf '%x' $((33 + $2)))"
}
keys G
wait_for '│ Text · #[1-9][0-9]* ' 10
click 4 2
wait_for '│ Text · #0 ' 10
ok $? "a click on the root row selects #0"
click 10 3
wait_for '│ Text · #[1-9][0-9]* ' 10
ok $? "a click on the next row selects that node: $(row 1 | grep -o 'Text · #[0-9]*')"

# ---- resize
$T resize-window -t t -x 170 -y 45
wait_for '^ Tree · .*│ Text · .*│ KV pages' 10
ok $? "170 columns: tree, text and KV side by side"
$T resize-window -t t -x 70 -y 20
wait_for 'needs at least 80x24' 10
ok $? "70x20: a clear message instead of panes"
screen | grep -q '(this terminal is 70x20)'
ok $? "the message gives the size"
$T resize-window -t t -x 120 -y 40
wait_for '^ Tree · .*│ Text · ' 10 && ! row 1 | grep -q 'KV pages'
ok $? "back at 120x40: two rows of panes again"

# ---- quit
keys q
wait_for 'DEFTREE-EXIT=' 20
screen | grep -q 'DEFTREE-EXIT=0'
ok $? "q quits (the tree was saved) with status 0: $(screen | grep -o 'DEFTREE-EXIT=[0-9]*')"
done_testing
