package scheduler_test

import (
	"errors"
	"fmt"
	"os"
	"strings"
)

// processAlive returns nil when the process exists and is not a zombie (a killed process whose
// parent died waits as a zombie until init reaps it: it runs no more).
func processAlive(pid int) error {
	data, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return err
	}
	if f := strings.Fields(string(data)); len(f) > 2 && f[2] == "Z" {
		return errors.New("zombie")
	}
	return nil
}
