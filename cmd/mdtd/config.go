package main

import (
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"

	"github.com/BurntSushi/toml"
	"github.com/spf13/pflag"
)

// EnvPrefix starts the environment variable of every mdtd flag:
// --log-level is MDTD_LOG_LEVEL, --config is MDTD_CONFIG.
const EnvPrefix = "MDTD_"

// notConfigurable are the flags that are not settings: they are read from
// the command line only (and --config also from MDTD_CONFIG).
var notConfigurable = []string{"config", "print-config", "help"}

// envName is the environment variable of a flag.
func envName(flag string) string {
	return EnvPrefix + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// settingSource says where the effective value of a setting came from.
type settingSource string

const (
	fromDefault settingSource = "default"
	fromFlag    settingSource = "flag"
	fromEnv     settingSource = "env"
	fromFile    settingSource = "file"
)

// configError is a bad setting in the environment or the config file.
type configError struct{ msg string }

func (e *configError) Error() string { return e.msg }

// applyConfig fills every flag that is not on the command line from its
// MDTD_* environment variable, else from the config file (--config, or
// MDTD_CONFIG): flags > environment > file > defaults. The file is TOML
// whose keys are the flag names ("log-level" or "log_level"); an unknown
// key is an error naming it. It returns where each setting came from.
func applyConfig(fs *pflag.FlagSet, file string, getenv func(string) (string, bool)) (map[string]settingSource, error) {
	src := map[string]settingSource{}
	var fileVals map[string]string
	if file != "" {
		var err error
		if fileVals, err = readConfigFile(fs, file); err != nil {
			return nil, err
		}
	}
	var errs []string
	fs.VisitAll(func(f *pflag.Flag) {
		if slices.Contains(notConfigurable, f.Name) {
			return
		}
		if f.Changed {
			src[f.Name] = fromFlag
			return
		}
		src[f.Name] = fromDefault
		if v, ok := getenv(envName(f.Name)); ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("invalid %s '%s': %v", envName(f.Name), v, err))
				return
			}
			src[f.Name] = fromEnv
			return
		}
		if v, ok := fileVals[f.Name]; ok {
			if err := fs.Set(f.Name, v); err != nil {
				errs = append(errs, fmt.Sprintf("config %s: invalid %s '%s': %v", file, f.Name, v, err))
				return
			}
			src[f.Name] = fromFile
		}
	})
	if len(errs) > 0 {
		return nil, &configError{strings.Join(errs, "; ")}
	}
	return src, nil
}

// readConfigFile reads a TOML config file into flag name -> value text,
// rejecting keys that are not settings and values of the wrong shape.
func readConfigFile(fs *pflag.FlagSet, file string) (map[string]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, &configError{fmt.Sprintf("config: %v", err)}
	}
	var raw map[string]any
	if _, err := toml.Decode(string(data), &raw); err != nil {
		return nil, &configError{fmt.Sprintf("config %s: %v", file, err)}
	}
	keys := make([]string, 0, len(raw))
	for k := range raw {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := map[string]string{}
	for _, k := range keys {
		name := strings.ReplaceAll(k, "_", "-")
		f := fs.Lookup(name)
		if f == nil || slices.Contains(notConfigurable, name) {
			return nil, &configError{fmt.Sprintf("config %s: unknown key '%s'", file, k)}
		}
		if _, dup := out[name]; dup {
			return nil, &configError{fmt.Sprintf("config %s: key '%s' given twice", file, k)}
		}
		switch v := raw[k].(type) {
		case string:
			out[name] = v
		case bool:
			out[name] = strconv.FormatBool(v)
		case int64:
			out[name] = strconv.FormatInt(v, 10)
		default:
			return nil, &configError{fmt.Sprintf("config %s: key '%s': want a string, integer or boolean, got %T", file, k, v)}
		}
	}
	return out, nil
}

// printConfig writes the effective settings as a TOML config file that
// --config accepts, each with where it came from.
func printConfig(w io.Writer, fs *pflag.FlagSet, file string, src map[string]settingSource) error {
	var b strings.Builder
	b.WriteString("# mdtd: effective settings (flags > MDTD_* environment > --config file > defaults)\n")
	if file != "" {
		fmt.Fprintf(&b, "# config file: %s\n", file)
	}
	fs.VisitAll(func(f *pflag.Flag) {
		if slices.Contains(notConfigurable, f.Name) {
			return
		}
		v := f.Value.String()
		switch f.Value.Type() {
		case "bool", "int", "int32", "int64", "uint", "uint8", "uint16", "uint32", "uint64":
		default:
			v = tomlString(v)
		}
		from := string(src[f.Name])
		switch src[f.Name] {
		case fromEnv:
			from += " " + envName(f.Name)
		case "":
			from = string(fromDefault)
		}
		fmt.Fprintf(&b, "%s = %s # %s\n", f.Name, v, from)
	})
	_, err := io.WriteString(w, b.String())
	return err
}

// tomlString quotes s as a TOML basic string.
func tomlString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"' || r == '\\':
			b.WriteByte('\\')
			b.WriteRune(r)
		case r < 0x20 || r == 0x7f:
			fmt.Fprintf(&b, "\\u%04X", r)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
