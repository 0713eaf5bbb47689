package changelog

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// MaxUserName is the longest user name accepted at registration.
const MaxUserName = 16

// User is a registered changelog consumer.
type User struct {
	// ID is the number in "cl<ID>"; never reused on this MDT.
	ID uint32 `json:"id"`
	// Name is the optional name given at registration.
	Name string `json:"name,omitempty"`
	// Mask is the per-user mask fixed at registration; 0 means maskless.
	Mask Mask `json:"mask,omitempty"`
	// Index is the last record the user cleared.
	Index Index `json:"index"`
	// Time is the time of the last successful clear or the registration.
	Time time.Time `json:"time"`
}

// DisplayName returns "cl<ID>" or "cl<ID>-<name>".
func (u User) DisplayName() string {
	if u.Name != "" {
		return fmt.Sprintf("cl%d-%s", u.ID, u.Name)
	}
	return fmt.Sprintf("cl%d", u.ID)
}

// ParseUserID parses the ways a user is named by number: "1", "cl1" and
// "cl1-anything" (only the number counts).
func ParseUserID(s string) (uint32, bool) {
	t := s
	if strings.HasPrefix(t, "cl") {
		t = t[2:]
		if i := strings.IndexByte(t, '-'); i >= 0 {
			t = t[:i]
		}
	}
	if t == "" || t[0] < '0' || t[0] > '9' {
		return 0, false
	}
	n, err := strconv.ParseUint(t, 10, 32)
	if err != nil || n == 0 {
		return 0, false
	}
	return uint32(n), true
}

// ValidateUserName checks Lustre's name rules: a letter first, then
// letters, digits, '_' or '-'; at most MaxUserName characters.
//
// Deliberate difference from Lustre: a 16-character name is stored whole
// (Lustre checks for 16 but silently stores 15 while lctl prints all 16).
func ValidateUserName(name string) error {
	if len(name) > MaxUserName {
		return &UserError{User: name, Err: ErrNameTooLong}
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		letter := c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z'
		if i == 0 && !letter || i > 0 && !letter && !(c >= '0' && c <= '9') && c != '_' && c != '-' {
			return &UserError{User: name, Err: ErrBadUser}
		}
	}
	if name == "" {
		return &UserError{User: name, Err: ErrBadUser}
	}
	return nil
}
