package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
)

const completionExamples = `  jstp-peer completion bash > ~/.local/share/bash-completion/completions/jstp-peer
  jstp-peer completion zsh > "${fpath[1]}/_jstp-peer"      (then: compinit)
  jstp-peer completion fish > ~/.config/fish/completions/jstp-peer.fish
  source <(jstp-peer completion bash)                      this shell only
`

// completionShells are the shells completion writes scripts for.
var completionShells = []string{"bash", "zsh", "fish"}

func runCompletion(ctx context.Context, args []string, _ io.Reader, stdout, stderr io.Writer) int {
	fs := newFlagSet("completion", "jstp-peer completion bash|zsh|fish",
		`Print a script that makes the shell complete jstp-peer's commands, their
flags, and the values of the flags that take a few (--format, --log-level,
--dht, ...), directories for --data-dir and files for --config and the
offline commands. Install it where the shell looks (examples below), or
source it in the running shell.

Exit status: 0 printed; 2 a usage error.`,
		completionExamples)
	pos, code, ok := parseArgs(fs, nil, args, stdout, stderr)
	if !ok {
		return code
	}
	if len(pos) != 1 || !slices.Contains(completionShells, pos[0]) {
		return usageError(fs, stderr, "want one shell: bash, zsh or fish")
	}
	specs := commandSpecs(ctx)
	var script string
	switch pos[0] {
	case "bash":
		script = bashCompletion(specs)
	case "zsh":
		script = zshCompletion(specs)
	case "fish":
		script = fishCompletion(specs)
	}
	_, _ = io.WriteString(stdout, script)
	return exitOK
}

// cmdSpec is what completion knows of a command: its flags, or its
// subcommands and theirs.
type cmdSpec struct {
	name, summary string
	flags         []flagSpec
	subs          []cmdSpec
}

// flagSpec is one flag: value is the name of its value ("" for a switch).
type flagSpec struct {
	name, value, help string
}

// flagValues are the values of the flags that take one of a few.
var flagValues = map[string][]string{
	"format":     {formatJSON, formatHTTP, formatBody},
	"to":         {"json", "url", "http"},
	"log-level":  {"debug", "info", "warn", "error"},
	"log-format": {logText, logJSON},
	"dht":        {"auto", "server", "client"},
}

// commandSpecs reads every command's flags from its own help, so the
// scripts follow the commands as they are (a command added to the table
// is completed without more code here).
func commandSpecs(ctx context.Context) []cmdSpec {
	var specs []cmdSpec
	for _, c := range commands {
		spec := cmdSpec{name: c.name, summary: c.summary}
		switch c.name {
		case "config":
			for _, sub := range []string{"init", "show"} {
				spec.subs = append(spec.subs, cmdSpec{name: sub, flags: helpFlags(ctx, c.run, sub, "-h")})
			}
		case "help", "completion":
		default:
			spec.flags = helpFlags(ctx, c.run, "-h")
		}
		specs = append(specs, spec)
	}
	return specs
}

// flagLine is a flag in a command's help: "  --name VALUE".
var flagLine = regexp.MustCompile(`^  --([a-z0-9][a-z0-9-]*)(?: (\S+))?$`)

// helpFlags runs a command with args (its -h) and reads the flags its
// help lists.
func helpFlags(ctx context.Context, run runFunc, args ...string) []flagSpec {
	var out bytes.Buffer
	run(ctx, args, strings.NewReader(""), &out, io.Discard)
	var flags []flagSpec
	lines := strings.Split(out.String(), "\n")
	for i, line := range lines {
		m := flagLine.FindStringSubmatch(line)
		if m == nil {
			continue
		}
		f := flagSpec{name: m[1], value: m[2]}
		if i+1 < len(lines) {
			f.help = strings.TrimSpace(lines[i+1])
			if j := strings.Index(f.help, " (default "); j > 0 {
				f.help = f.help[:j]
			}
		}
		flags = append(flags, f)
	}
	return flags
}

// flagKind says how a flag's value is completed: "dir", "file", a list
// of values, or nothing ("" and nil: free text).
func flagKind(f flagSpec) (kind string, values []string) {
	switch {
	case f.name == "data-dir":
		return "dir", nil
	case f.name == "config" || f.value == "FILE":
		return "file", nil
	}
	return "", flagValues[f.name]
}

func commandNames(specs []cmdSpec) []string {
	names := make([]string, len(specs))
	for i, s := range specs {
		names[i] = s.name
	}
	return names
}

// takesFiles are the commands whose arguments are often files.
var takesFiles = []string{"check", "fmt", "send"}

func bashCompletion(specs []cmdSpec) string {
	var b strings.Builder
	b.WriteString(`# bash completion for jstp-peer (jstp-peer completion bash)
_jstp_peer() {
    local cur=${COMP_WORDS[COMP_CWORD]} prev=${COMP_WORDS[COMP_CWORD-1]}
    COMPREPLY=()
    if ((COMP_CWORD == 1)); then
        COMPREPLY=($(compgen -W "` + strings.Join(commandNames(specs), " ") + `" -- "$cur"))
        return
    fi
    local cmd=${COMP_WORDS[1]} flags=""
    case "$prev" in
`)
	// Flag values, whatever the command: a flag name means the same
	// everywhere.
	seen := map[string]bool{}
	var dirs, files, free []string
	lists := map[string][]string{}
	for _, spec := range specs {
		for _, f := range allFlags(spec) {
			if f.value == "" || seen[f.name] {
				continue
			}
			seen[f.name] = true
			kind, values := flagKind(f)
			switch {
			case kind == "dir":
				dirs = append(dirs, f.name)
			case kind == "file":
				files = append(files, f.name)
			case values != nil:
				lists[f.name] = values
			default:
				free = append(free, f.name)
			}
		}
	}
	pattern := func(names []string) string {
		var alts []string
		for _, n := range names {
			alts = append(alts, "--"+n, "-"+n)
		}
		return strings.Join(alts, "|")
	}
	if len(dirs) > 0 {
		fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -d -- \"$cur\")); return ;;\n", pattern(dirs))
	}
	if len(files) > 0 {
		fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -f -- \"$cur\")); return ;;\n", pattern(files))
	}
	for _, name := range sortedKeys(lists) {
		fmt.Fprintf(&b, "        %s) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", pattern([]string{name}), strings.Join(lists[name], " "))
	}
	if len(free) > 0 {
		fmt.Fprintf(&b, "        %s) return ;;\n", pattern(free))
	}
	b.WriteString("    esac\n    case \"$cmd\" in\n")
	for _, spec := range specs {
		switch {
		case spec.name == "help":
			fmt.Fprintf(&b, "        help) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", strings.Join(commandNames(specs), " "))
		case spec.name == "completion":
			fmt.Fprintf(&b, "        completion) COMPREPLY=($(compgen -W %q -- \"$cur\")); return ;;\n", strings.Join(completionShells, " "))
		case len(spec.subs) > 0:
			fmt.Fprintf(&b, "        %s)\n            if ((COMP_CWORD == 2)); then\n                COMPREPLY=($(compgen -W %q -- \"$cur\")); return\n            fi\n            case ${COMP_WORDS[2]} in\n", spec.name, strings.Join(commandNames(spec.subs), " "))
			for _, sub := range spec.subs {
				fmt.Fprintf(&b, "                %s) flags=%q ;;\n", sub.name, flagWords(sub.flags))
			}
			b.WriteString("            esac ;;\n")
		default:
			fmt.Fprintf(&b, "        %s) flags=%q ;;\n", spec.name, flagWords(spec.flags))
		}
	}
	b.WriteString(`    esac
    if [[ $cur == -* ]]; then
        COMPREPLY=($(compgen -W "$flags" -- "$cur"))
        return
    fi
    case "$cmd" in
        ` + strings.Join(takesFiles, "|") + `) COMPREPLY=($(compgen -f -- "$cur")) ;;
    esac
}
complete -F _jstp_peer jstp-peer
`)
	return b.String()
}

func allFlags(spec cmdSpec) []flagSpec {
	flags := slices.Clone(spec.flags)
	for _, sub := range spec.subs {
		flags = append(flags, sub.flags...)
	}
	return flags
}

func flagWords(flags []flagSpec) string {
	words := make([]string, len(flags))
	for i, f := range flags {
		words[i] = "--" + f.name
	}
	return strings.Join(words, " ")
}

func sortedKeys(m map[string][]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// zshQuote quotes s for zsh in single quotes.
func zshQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// zshDescription makes help text safe inside an _arguments spec, where
// brackets and colons have meanings.
func zshDescription(s string) string {
	return strings.NewReplacer("[", "(", "]", ")", ":", " -", "\\", "/", "`", "").Replace(s)
}

func zshFlagSpecs(flags []flagSpec) []string {
	var out []string
	for _, f := range flags {
		spec := "--" + f.name + "[" + zshDescription(f.help) + "]"
		if f.value != "" {
			kind, values := flagKind(f)
			action := " "
			switch {
			case kind == "dir":
				action = "_files -/"
			case kind == "file":
				action = "_files"
			case values != nil:
				action = "(" + strings.Join(values, " ") + ")"
			}
			spec += ":" + zshDescription(f.value) + ":" + action
		}
		out = append(out, zshQuote(spec))
	}
	return out
}

func zshCompletion(specs []cmdSpec) string {
	var b strings.Builder
	b.WriteString("#compdef jstp-peer\n# zsh completion for jstp-peer (jstp-peer completion zsh)\n_jstp_peer() {\n    local -a commands\n    commands=(\n")
	for _, spec := range specs {
		fmt.Fprintf(&b, "        %s\n", zshQuote(spec.name+":"+zshDescription(spec.summary)))
	}
	b.WriteString(`    )
    if ((CURRENT == 2)); then
        _describe -t commands 'jstp-peer command' commands
        return
    fi
    local cmd=${words[2]}
    shift words
    ((CURRENT--))
    case $cmd in
`)
	for _, spec := range specs {
		switch {
		case spec.name == "help":
			b.WriteString("        help) _describe -t commands 'jstp-peer command' commands ;;\n")
		case spec.name == "completion":
			fmt.Fprintf(&b, "        completion) _values shell %s ;;\n", strings.Join(completionShells, " "))
		case len(spec.subs) > 0:
			fmt.Fprintf(&b, "        %s)\n            if ((CURRENT == 2)); then\n                _values subcommand %s\n                return\n            fi\n            shift words\n            ((CURRENT--))\n            case ${words[1]} in\n", spec.name, strings.Join(commandNames(spec.subs), " "))
			for _, sub := range spec.subs {
				fmt.Fprintf(&b, "                %s) _arguments %s ;;\n", sub.name, strings.Join(zshFlagSpecs(sub.flags), " "))
			}
			b.WriteString("            esac ;;\n")
		default:
			args := zshFlagSpecs(spec.flags)
			if slices.Contains(takesFiles, spec.name) {
				args = append(args, zshQuote("*:file:_files"))
			}
			fmt.Fprintf(&b, "        %s) _arguments %s ;;\n", spec.name, strings.Join(args, " "))
		}
	}
	b.WriteString("    esac\n}\nif [[ $zsh_eval_context[-1] == loadautofunc ]]; then\n    _jstp_peer \"$@\"\nelse\n    compdef _jstp_peer jstp-peer\nfi\n")
	return b.String()
}

// fishQuote quotes s for fish in single quotes.
func fishQuote(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, "'", `\'`).Replace(s) + "'"
}

func fishFlagLines(b *strings.Builder, cond string, flags []flagSpec) {
	for _, f := range flags {
		line := fmt.Sprintf("complete -c jstp-peer -n %s -l %s", fishQuote(cond), f.name)
		if f.value != "" {
			kind, values := flagKind(f)
			switch {
			case kind == "dir":
				line += " -x -a '(__fish_complete_directories)'"
			case kind == "file":
				line += " -r -F"
			case values != nil:
				line += " -x -a " + fishQuote(strings.Join(values, " "))
			default:
				line += " -x"
			}
		}
		if f.help != "" {
			line += " -d " + fishQuote(f.help)
		}
		b.WriteString(line + "\n")
	}
}

func fishCompletion(specs []cmdSpec) string {
	var b strings.Builder
	names := strings.Join(commandNames(specs), " ")
	b.WriteString("# fish completion for jstp-peer (jstp-peer completion fish)\ncomplete -c jstp-peer -f\n")
	for _, spec := range specs {
		fmt.Fprintf(&b, "complete -c jstp-peer -n %s -a %s -d %s\n", fishQuote("not __fish_seen_subcommand_from "+names), spec.name, fishQuote(spec.summary))
	}
	for _, spec := range specs {
		cond := "__fish_seen_subcommand_from " + spec.name
		switch {
		case spec.name == "help":
			fmt.Fprintf(&b, "complete -c jstp-peer -n %s -a %s\n", fishQuote(cond), fishQuote(names))
		case spec.name == "completion":
			fmt.Fprintf(&b, "complete -c jstp-peer -n %s -a %s\n", fishQuote(cond), fishQuote(strings.Join(completionShells, " ")))
		case len(spec.subs) > 0:
			subs := strings.Join(commandNames(spec.subs), " ")
			fmt.Fprintf(&b, "complete -c jstp-peer -n %s -a %s\n", fishQuote(cond+"; and not __fish_seen_subcommand_from "+subs), fishQuote(subs))
			for _, sub := range spec.subs {
				fishFlagLines(&b, cond+"; and __fish_seen_subcommand_from "+sub.name, sub.flags)
			}
		default:
			fishFlagLines(&b, cond, spec.flags)
			if slices.Contains(takesFiles, spec.name) {
				fmt.Fprintf(&b, "complete -c jstp-peer -n %s -F\n", fishQuote(cond))
			}
		}
	}
	return b.String()
}
