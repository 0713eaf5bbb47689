package main

// example is the "Examples:" section of mdtd's help.
const example = `  mdtd
  mdtd --data /var/lib/mdtd/lustre-MDT0000 --metrics 127.0.0.1:9188
  mdtd --fsname testfs --index 1 --log-format json`
