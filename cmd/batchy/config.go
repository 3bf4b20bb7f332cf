package main

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"sort"
	"strings"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"

	"github.com/batchy/batchy/internal/event"
)

// The configuration comes from, in this order of precedence: flags, BATCHY_<FLAG> environment
// variables, the YAML file named by --config, and the defaults. The file's keys are the flags'
// names (redis-url: ..., log-sink: [...]); a key that is not a flag is an error.

// maxConfigFileBytes bounds the --config file.
const maxConfigFileBytes = 1 << 20

// Secret kinds, set on a flag with markSecret: how `batchy config` and logs show its value.
const (
	secretHidden = "hidden" // shown as "(set)" only
	secretURL    = "url"    // a URL shown with its credentials (userinfo, query values) hidden
	secretHook   = "hook"   // a webhook URL: only scheme and host shown (its path is the secret)
)

const secretAnnotation = "batchy-secret"

// markSecret says how a flag's value is hidden when shown.
func markSecret(fs *pflag.FlagSet, name, kind string) {
	if err := fs.SetAnnotation(name, secretAnnotation, []string{kind}); err != nil {
		panic(err) // a programming error: the flag does not exist
	}
}

// applyConfigFile sets every flag not already set (by the command line or the environment) from
// the YAML file at path. Keys that name a flag of another command (serve's keys in a file shared
// with export) are skipped; keys that name no flag at all are errors.
func applyConfigFile(fs *pflag.FlagSet, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return fmt.Errorf("--config: %v", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxConfigFileBytes+1))
	if err != nil {
		return fmt.Errorf("--config %s: %v", path, err)
	}
	if len(data) > maxConfigFileBytes {
		return fmt.Errorf("--config %s: larger than %d bytes", path, maxConfigFileBytes)
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return fmt.Errorf("--config %s: %v", path, err)
	}
	if len(doc.Content) == 0 {
		return nil // an empty file
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return fmt.Errorf("--config %s: want a mapping of flag names to values", path)
	}
	known := knownConfigKeys()
	var errs []error
	seen := map[string]bool{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		name := k.Value
		if seen[name] {
			errs = append(errs, fmt.Errorf("line %d: %q is given twice", k.Line, name))
			continue
		}
		seen[name] = true
		fl := fs.Lookup(name)
		if fl == nil || name == "config" {
			if !known[name] || name == "config" {
				errs = append(errs, fmt.Errorf("line %d: unknown key %q (the keys are the flags of batchy serve, e.g. redis-url)", k.Line, name))
			}
			continue
		}
		if fl.Changed {
			continue // the command line or the environment wins
		}
		values, err := nodeValues(v)
		if err != nil {
			errs = append(errs, fmt.Errorf("line %d: %s: %v", v.Line, name, err))
			continue
		}
		for _, s := range values {
			if err := setFrom(fs, name, s, "file"); err != nil {
				errs = append(errs, fmt.Errorf("line %d: %s: %v", v.Line, name, err))
				break
			}
		}
	}
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("--config %s:\n%w", path, err)
	}
	return nil
}

// nodeValues turns a scalar into one value and a list of scalars into one value per item (for
// repeatable flags such as log-sink).
func nodeValues(n *yaml.Node) ([]string, error) {
	switch n.Kind {
	case yaml.ScalarNode:
		return []string{n.Value}, nil
	case yaml.SequenceNode:
		var out []string
		for _, item := range n.Content {
			if item.Kind != yaml.ScalarNode {
				return nil, errors.New("a list may hold only plain values")
			}
			out = append(out, item.Value)
		}
		return out, nil
	}
	return nil, errors.New("want a value or a list of values")
}

// knownConfigKeys are the flags of serve, the command that knows them all.
func knownConfigKeys() map[string]bool {
	known := map[string]bool{}
	var cfg serveConfig
	cfg.flagSet("serve", io.Discard).VisitAll(func(f *pflag.Flag) { known[f.Name] = true })
	return known
}

// shownValue is a flag's value as logs and `batchy config` may show it: secrets hidden.
func shownValue(fl *pflag.Flag) string {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		values := sv.GetSlice()
		for i, v := range values {
			values[i] = hideSecret(secretKind(fl), v)
		}
		return "[" + strings.Join(values, ", ") + "]"
	}
	return hideSecret(secretKind(fl), fl.Value.String())
}

// rawValue is a flag's value as shownValue would give it with nothing hidden.
func rawValue(fl *pflag.Flag) string {
	if sv, ok := fl.Value.(pflag.SliceValue); ok {
		return "[" + strings.Join(sv.GetSlice(), ", ") + "]"
	}
	return fl.Value.String()
}

// secretKind is how a flag's value is hidden, "" for a value that is no secret.
func secretKind(fl *pflag.Flag) string {
	if a := fl.Annotations[secretAnnotation]; len(a) > 0 {
		return a[0]
	}
	return ""
}

func hideSecret(kind, v string) string {
	if v == "" {
		return v
	}
	switch kind {
	case secretHidden:
		return "(set)"
	case secretURL:
		return event.Redact(v)
	case secretHook:
		u, err := url.Parse(v)
		if err != nil || u.Host == "" {
			return "(set)"
		}
		return u.Scheme + "://" + u.Host + "/(hidden)"
	}
	return v
}

// printConfig writes the effective configuration as YAML that --config accepts, each value with
// where it came from; a value with a hidden secret is a comment, so that the output can be fed
// back without placeholders replacing the secrets.
func printConfig(w io.Writer, fs *pflag.FlagSet, sources map[string]string) {
	var names []string
	fs.VisitAll(func(f *pflag.Flag) {
		// config names this file, which cannot name itself: the output can be fed back as one.
		if f.Name != "help" && f.Name != "config" {
			names = append(names, f.Name)
		}
	})
	sort.Strings(names)
	var b bytes.Buffer
	for _, name := range names {
		fl := fs.Lookup(name)
		src := sources[name]
		if src == "" {
			src = "default"
		}
		v := shownValue(fl)
		switch fl.Value.Type() {
		case "bool", "int", "int64", "duration":
			// plain YAML already
		case "string":
			v = yamlScalar(v)
		default:
			if sv, ok := fl.Value.(pflag.SliceValue); ok {
				items := []string{}
				for _, s := range sv.GetSlice() {
					items = append(items, yamlScalar(hideSecret(secretKind(fl), s)))
				}
				v = "[" + strings.Join(items, ", ") + "]"
			} else {
				v = yamlScalar(v)
			}
		}
		if shownValue(fl) != rawValue(fl) {
			// A hidden secret stays a comment: fed back as a --config file, the output must not
			// set a placeholder in the secret's place.
			fmt.Fprintf(&b, "# %s: %s # %s; secret hidden\n", name, v, src)
			continue
		}
		fmt.Fprintf(&b, "%s: %s # %s\n", name, v, src)
	}
	w.Write(b.Bytes())
}

// yamlScalar quotes s when YAML would otherwise read it as something else.
func yamlScalar(s string) string {
	out, err := yaml.Marshal(s)
	if err != nil {
		return fmt.Sprintf("%q", s)
	}
	return strings.TrimSuffix(string(out), "\n")
}

// configCmd prints the configuration serve would run with, given the same flags, environment and
// --config file, with every secret hidden; it checks it as serve would.
func configCmd(args []string, stdout, stderr io.Writer) int {
	var cfg serveConfig
	fs := cfg.flagSet("config", stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: batchy config [serve's flags]\n\nPrints the configuration batchy serve would run with (flags, BATCHY_* variables, --config file), secrets hidden, as a --config file.\n")
	}
	if ok, code := parseFlags(fs, args, stderr); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "batchy config: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if err := cfg.check(); err != nil {
		fmt.Fprintf(stderr, "batchy config: %v\n", err)
		return exitUsage
	}
	if _, err := cfg.loadTokens(); err != nil {
		fmt.Fprintf(stderr, "batchy config: %v\n", err)
		return exitUsage
	}
	printConfig(stdout, fs, flagSources(fs))
	return exitOK
}
