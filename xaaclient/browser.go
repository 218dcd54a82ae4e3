package xaaclient

import (
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"runtime"
)

// DefaultBrowser prints the sign-in URL on standard error (never standard
// output, which may carry a protocol, as for `xaa bridge`) and asks the
// system to open it. Failing to open a browser is not an error: the user
// can copy the URL.
func DefaultBrowser(ctx context.Context, authURL string) error {
	return PrintAndOpen(os.Stderr, true)(ctx, authURL)
}

// PrintAndOpen returns a Browser that writes the URL to w and, when open
// is set, starts the system's URL opener (xdg-open, open, or the Windows
// shell) without waiting for it.
func PrintAndOpen(w io.Writer, open bool) func(context.Context, string) error {
	return func(ctx context.Context, authURL string) error {
		if _, err := fmt.Fprintf(w, "To sign in, open this URL in your browser:\n\n  %s\n\n", authURL); err != nil {
			return err
		}
		if !open {
			return nil
		}
		var cmd *exec.Cmd
		switch runtime.GOOS {
		case "darwin":
			cmd = exec.Command("open", authURL)
		case "windows":
			cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", authURL)
		default:
			cmd = exec.Command("xdg-open", authURL)
		}
		if err := cmd.Start(); err == nil {
			go func() { _ = cmd.Wait() }()
		}
		return nil
	}
}
