package main

// examples are the "Examples:" sections of mdc's help.
var examples = map[string]string{
	"": `  mdc mkdir pics
  mdc touch pics/chloe.jpg
  mdc --uid 500 --gid 500 cat secret/plan
  mdc ls -l pics`,
	"cat":      `  mdc cat secret/plan` + "\n" + `  mdc --uid 500 --gid 500 cat secret/plan   # a denied open records NOPEN`,
	"chmod":    `  mdc chmod 0750 secret` + "\n" + `  mdc chmod 644 pics/chloe.jpg`,
	"chown":    `  mdc chown 500:500 pics/chloe.jpg` + "\n" + `  mdc chown 0 secret`,
	"close":    `  mdc close 3         # the handle "mdc open" printed` + "\n" + `  mdc close 3 4`,
	"getfattr": `  mdc getfattr -n user.xattr1 secret/plan` + "\n" + `  mdc getfattr -d secret/plan`,
	"ln":       `  mdc ln pics/chloe.jpg pics/chloe-copy.jpg` + "\n" + `  mdc ln -s chloe.jpg pics/latest`,
	"ls":       `  mdc ls` + "\n" + `  mdc ls -l pics` + "\n" + `  mdc ls -d pics`,
	"mkdir":    `  mdc mkdir pics` + "\n" + `  mdc mkdir -p a/b/c` + "\n" + `  mdc mkdir -m 0700 secret`,
	"mknod":    `  mdc mknod pipe p` + "\n" + `  mdc mknod -m 0600 disk b 8 0`,
	"mount":    `  mdc --server unix:/run/fidlog/mdtd.sock mount /mnt/fidlog   # as root; umount /mnt/fidlog ends it` + "\n" + `  mdc mount --jobid-format %e.%u.%h /mnt/fidlog` + "\n" + `  mdc mount --attr-timeout 0 /mnt/fidlog   # no caching at all`,
	"mv":       `  mdc mv pics/chloe.jpg pics/chloe-2026.jpg`,
	"open":     `  mdc open -w --create notes.txt` + "\n" + `  mdc open -r notes.txt`,
	"rm":       `  mdc rm pics/chloe.jpg` + "\n" + `  mdc rm -f maybe-there`,
	"rmdir":    `  mdc rmdir pics`,
	"setfattr": `  mdc setfattr -n user.xattr1 -v value secret/plan` + "\n" + `  mdc setfattr -x user.xattr1 secret/plan`,
	"stat":     `  mdc stat pics/chloe.jpg`,
	"touch":    `  mdc touch pics/chloe.jpg pics/max.jpg`,
	"truncate": `  mdc truncate -s 0 notes.txt` + "\n" + `  mdc truncate -s 1048576 big.img`,
}
