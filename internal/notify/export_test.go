package notify

import "time"

// SetIdleGrace sets how long h keeps its subscription after the last waiter left (tests).
func SetIdleGrace(h *Hub, d time.Duration) { h.idleGrace = d }
