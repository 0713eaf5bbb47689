package main

// examples are the "Examples:" sections of mdbench's help.
var examples = map[string]string{
	"": `  mdbench table --quick
  mdbench load --server 127.0.0.1:7988 --clients 8 --duration 30s`,
	"load": `  mdbench load --server 127.0.0.1:7988 --clients 8 --duration 30s
  mdbench load --server unix:/run/mdtd/mdtd.sock --mix create --dir bench1`,
	"table": `  mdbench table --quick
  mdbench table --full --json out.json
  mdbench table --quick --cpuprofile profiles`,
}
