package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"

	"hedge/waf"
	"hedge/waf/learn"
)

// wafCmd is `hedge waf suggest`: what the routes in learn mode saw, as a
// JSON schema per route and the field exclusions that would have removed
// the rule engine's matches, each with the counts that justify it.
func wafCmd(args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] != "suggest" {
		fmt.Fprintln(stderr, "usage: hedge waf suggest -c FILE [-data DIR]... [-file FILE]... [-route NAME] [-o DIR] [-min-clients N] [-json]")
		return 2
	}
	fs := flag.NewFlagSet("waf suggest", flag.ContinueOnError)
	fs.SetOutput(stderr)
	file := fs.String("c", "", "configuration `file` (its data_dir holds the learned models); empty: the embedded demo")
	var dirs []string
	fs.Func("data", "data `directory` to read instead of the configuration's; repeat it to merge the models several nodes learned",
		func(d string) error { dirs = append(dirs, d); return nil })
	var files []string
	fs.Func("file", "a saved or fetched model `file` (learn.json, or what GET /admin/waf/learn answers) to read instead of the configuration's; repeat it, or add -data, to merge",
		func(f string) error { files = append(files, f); return nil })
	route := fs.String("route", "", "only this `route`")
	outDir := fs.String("o", "", "write each route's schema to `dir`/ROUTE.schema.json (the configuration names the file)")
	minClients := fs.Int("min-clients", 2, "suggest an exclusion for rule matches, and let the schema allow a body field, only when at least `n` client addresses sent them")
	asJSON := fs.Bool("json", false, "print the suggestions as JSON")
	if fs.Parse(args[1:]) != nil {
		return 2
	}
	given := len(files) // the -file ones come first
	for _, d := range dirs {
		files = append(files, waf.LearnFile(d))
	}
	if len(files) == 0 {
		cfg, err := loadConfig(*file)
		if err != nil {
			fmt.Fprintln(stderr, err)
			return 2
		}
		files = []string{waf.LearnFile(cfg.DataDir)}
	}
	// One model per route, the nodes' models of it merged.
	var models []*learn.Model
	byRoute := map[string]*learn.Model{}
	var read []string
	for i, path := range files {
		f, err := learn.ReadFile(path)
		if err != nil {
			hint := "is a route in waf.mode learn, and has its node stopped or saved since?"
			if i < given {
				hint = "want a learn.json, or what GET /admin/waf/learn answered with 200"
			}
			fmt.Fprintf(stderr, "hedge waf suggest: %v (%s)\n", err, hint)
			return 1
		}
		read = append(read, fmt.Sprintf("%s (saved %s)", path, f.Saved))
		for _, m := range f.Routes {
			if prev := byRoute[m.Route]; prev != nil {
				prev.Merge(m)
				continue
			}
			byRoute[m.Route] = m
			models = append(models, m)
		}
	}
	var out []learn.Suggestion
	for _, m := range models {
		if *route != "" && m.Route != *route {
			continue
		}
		out = append(out, learn.Suggest(m, learn.Options{MinClients: *minClients}))
	}
	if *route != "" && len(out) == 0 {
		fmt.Fprintf(stderr, "hedge waf suggest: %s: no model of route %q\n", strings.Join(read, ", "), *route)
		return 1
	}
	schemaFiles := make([]string, len(out))
	if *outDir != "" {
		if err := os.MkdirAll(*outDir, 0o750); err != nil {
			fmt.Fprintln(stderr, "hedge waf suggest:", err)
			return 1
		}
		for i, s := range out {
			if s.Schema == nil {
				continue
			}
			schemaFiles[i], _ = filepath.Abs(filepath.Join(*outDir, s.Route+".schema.json"))
			if err := os.WriteFile(schemaFiles[i], append(slices.Clone(s.Schema), '\n'), 0o640); err != nil {
				fmt.Fprintln(stderr, "hedge waf suggest:", err)
				return 1
			}
		}
	}
	if *asJSON {
		enc := json.NewEncoder(stdout)
		enc.SetIndent("", "  ")
		if err := enc.Encode(out); err != nil {
			return 1
		}
		return 0
	}
	fmt.Fprintf(stdout, "# learned models in %s; review before applying: every line says what it rests on\n", strings.Join(read, ", "))
	for i := range out {
		fmt.Fprintln(stdout)
		out[i].Write(stdout, schemaFiles[i])
	}
	return 0
}
