package serve

import (
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/residual-nn/residual/models"
)

// TestWebPage drives the embedded page in headless Chromium: it picks a
// photo in the file input, waits for the top-5 to render, and checks the
// rendered top-1 and the five bars against the :classify route, for the
// newest of a model's versions. It skips
// when no Chromium is installed (.ci/run installs Debian's chromium).
func TestWebPage(t *testing.T) {
	var browser string
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			browser = p
			break
		}
	}
	if browser == "" {
		t.Skip("no Chromium on PATH (chromium, chromium-browser, google-chrome, headless-shell): the browser test needs one")
	}
	if testing.Short() {
		t.Skip("starts a browser; skipped in -short mode")
	}
	net := newResNet(t)
	seg := newFake()
	seg.task, seg.classes = models.Segment, 2
	// "resnet" version 1 is a segmenter and version 2 the classifier: the
	// page must show and use the newest, which its unversioned requests
	// reach (it took the oldest's metadata and task).
	ts := start(t, Config{}, map[string]Backend{"resnet": seg, "unet": seg})
	if err := ts.Add(context.Background(), "resnet", "2", net); err != nil {
		t.Fatal(err)
	}
	photo, err := filepath.Abs("testdata/ring.png")
	if err != nil {
		t.Fatal(err)
	}
	pngb, err := os.ReadFile(photo)
	if err != nil {
		t.Fatal(err)
	}
	code, _, b := post(t, ts.url+"/v1/models/resnet:classify", "image/png", pngb)
	var want ClassifyResponse
	if err := json.Unmarshal(b, &want); code != 200 || err != nil || len(want.Predictions) != 5 {
		t.Fatalf("classify: %d %s", code, b)
	}

	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(browser),
		chromedp.NoSandbox, // the test may run as root
		chromedp.DisableGPU,
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	defer cancelAlloc()
	ctx, cancel := chromedp.NewContext(actx)
	defer cancel()
	ctx, cancelT := context.WithTimeout(ctx, 90*time.Second)
	defer cancelT()

	err = chromedp.Do(ctx,
		chromedp.Navigate(ts.url+"/"),
		chromedp.WaitReady(chromedp.CSS(`#model option`)),
		chromedp.SetValue(chromedp.ID("model"), "resnet"),
		chromedp.SetUploadFiles(chromedp.ID("file"), []string{photo}),
		chromedp.WaitVisible(chromedp.ID("top1")),
	)
	if err != nil {
		t.Fatalf("browser: %v", err)
	}
	top1, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("top1")))
	if err != nil {
		t.Fatal(err)
	}
	rows, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSSAll(`#results tr`)))
	if err != nil {
		t.Fatal(err)
	}
	meta, err := chromedp.Run(ctx, chromedp.Text(chromedp.ID("meta")))
	if err != nil {
		t.Fatal(err)
	}
	if top1 != want.Predictions[0].Label {
		t.Errorf("rendered top-1 %q, the server's %q", top1, want.Predictions[0].Label)
	}
	if len(rows) != 5 {
		t.Errorf("%d result rows rendered, want 5", len(rows))
	}
	if !strings.Contains(meta, `"resnet20"`) || !strings.Contains(meta, `"input"`) {
		t.Errorf("metadata panel shows %q", meta)
	}

	// The U-Net: choosing it runs the photo again and shows the overlay at
	// the photo's size.
	if _, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`(() => { const s = document.getElementById("model"); s.value = "unet"; s.dispatchEvent(new Event("change")); return true; })()`)); err != nil {
		t.Fatalf("choosing the U-Net: %v", err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.ID("mask"))); err != nil {
		t.Fatalf("browser, segmentation: %v", err)
	}
	width, err := chromedp.Run(ctx, chromedp.Poll[float64](`document.getElementById("mask").naturalWidth || null`))
	if err != nil || width != 28 {
		t.Errorf("overlay image is %v pixels wide (%v), want the photo's 28", width, err)
	}
}
