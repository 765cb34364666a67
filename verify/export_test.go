package verify

// Dir exposes the cluster's temporary directory so tests can check that Stop removes it.
func (l *Local) Dir() string { return l.dir }
