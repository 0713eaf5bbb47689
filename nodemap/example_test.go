package nodemap_test

import (
	"errors"
	"fmt"

	"github.com/fidlog/fidlog/nodemap"
)

func Example() {
	c := nodemap.New()
	_ = c.Add("backup")
	_ = c.AddRange("backup", "192.168.1.[1-254]@tcp")
	_ = c.Modify("backup", "audit_mode", "0")
	_ = c.Modify("backup", "admin", "1")
	_ = c.Modify("backup", "trusted", "1")
	c.Activate(true)

	id := c.Map(nodemap.MustParseNID("192.168.1.7@tcp"), 0, 0)
	fmt.Println(id.Nodemap, id.UID, id.Admin, id.Audit)
	id = c.Map(nodemap.MustParseNID("10.0.0.7@tcp"), 0, 0)
	fmt.Println(id.Nodemap, id.UID, id.Admin, id.Audit)

	err := c.AddRange("backup", "192.168.1.[1,5]@tcp")
	fmt.Println(err, errors.Is(err, nodemap.ErrInvalid))
	err = c.Add("backup")
	fmt.Println(err, errors.Is(err, nodemap.ErrExists))

	for _, p := range c.Params() {
		if p.Name == "nodemap.backup.ranges" {
			fmt.Println(p.Value)
		}
	}
	// Output:
	// backup 0 true false
	// default 65534 false true
	// nodemap ranges must be contiguous: 192.168.1.[1,5]@tcp true
	// nodemap 'backup' already exists true
	// [
	//  { id: 1, start_nid: 192.168.1.1@tcp, end_nid: 192.168.1.254@tcp }
	// ]
}
