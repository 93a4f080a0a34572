package device

import (
	"fmt"
	"io"
	"os"
	"strconv"

	"golang.org/x/sys/unix"
)

// readTenantFile reads the first size bytes of a regular file a tenant can
// write (its accounting file, a card region). It opens the path with
// O_PATH|O_NOFOLLOW first: that neither
// follows a symlink nor opens what the path names, so a FIFO cannot block
// and a device node's driver is not called (a watchdog arms on open, a
// tape rewinds). Only once fstat says it is a regular file of the full
// size is that same file, not the path the container may have replaced
// since, opened for reading through /proc/self/fd.
func readTenantFile(path string, size int) ([]byte, error) {
	pfd, err := unix.Open(path, unix.O_PATH|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "open", Path: path, Err: err}
	}
	defer unix.Close(pfd)
	var st unix.Stat_t
	if err := unix.Fstat(pfd, &st); err != nil {
		return nil, &os.PathError{Op: "fstat", Path: path, Err: err}
	}
	if kind := st.Mode & unix.S_IFMT; kind != unix.S_IFREG {
		return nil, fmt.Errorf("%s: is a %s, want a regular file", path, fileKind(kind))
	}
	if st.Size < int64(size) {
		return nil, fmt.Errorf("%s: %d bytes, want %d", path, st.Size, size)
	}
	fd, err := unix.Open("/proc/self/fd/"+strconv.Itoa(pfd), unix.O_RDONLY|unix.O_NONBLOCK|unix.O_NOCTTY|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, &os.PathError{Op: "reopen", Path: path, Err: err}
	}
	f := os.NewFile(uintptr(fd), path)
	defer f.Close()
	b := make([]byte, size)
	// ReadAt of a regular file returns all of b or an error; the file
	// may have been truncated since the fstat.
	if _, err := f.ReadAt(b, 0); err != nil {
		if err == io.EOF {
			return nil, fmt.Errorf("%s: truncated while read, want %d bytes", path, size)
		}
		return nil, err
	}
	return b, nil
}

func fileKind(kind uint32) string {
	switch kind {
	case unix.S_IFLNK:
		return "symlink"
	case unix.S_IFIFO:
		return "FIFO"
	case unix.S_IFCHR:
		return "character device"
	case unix.S_IFBLK:
		return "block device"
	case unix.S_IFDIR:
		return "directory"
	case unix.S_IFSOCK:
		return "socket"
	}
	return "file of type " + strconv.FormatUint(uint64(kind), 8)
}
