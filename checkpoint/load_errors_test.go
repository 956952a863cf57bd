package checkpoint

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestLoadNamesWhatItGot: a folder, a run folder, a PNG and a zip given
// as a checkpoint are errors that say what they are (they said a header
// length did not fit, or "0 bytes is too short", leaving the user to
// guess).
func TestLoadNamesWhatItGot(t *testing.T) {
	dir := t.TempDir()
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(run, "best.safetensors"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	png := filepath.Join(dir, "photo.png")
	zip := filepath.Join(dir, "model.pth")
	for path, b := range map[string]string{png: "\x89PNG\r\n\x1a\n" + strings.Repeat("x", 100), zip: "PK\x03\x04" + strings.Repeat("x", 100)} {
		if err := os.WriteFile(path, []byte(b), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for path, want := range map[string]string{
		dir: "is a folder, not a safetensors file",
		run: "a run folder: its checkpoints are " + filepath.Join(run, "best.safetensors"),
		png: "begins like a PNG image, not a safetensors file",
		zip: "a PyTorch .pth? residual import torch reads it",
	} {
		if _, err := Load(path); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Load(%s): %v; want an error saying %q", filepath.Base(path), err, want)
		}
	}
}
