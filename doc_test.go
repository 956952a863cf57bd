package residual

import (
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExportedNamesHaveDocComments enforces the project rule that every
// exported name in non-generated, non-test code has a doc comment.
func TestExportedNamesHaveDocComments(t *testing.T) {
	fset := token.NewFileSet()
	err := filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if d.IsDir() || !strings.HasSuffix(path, ".go") || strings.HasSuffix(path, "_test.go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return err
		}
		if ast.IsGenerated(f) {
			return nil
		}
		if f.Name.Name != "main" && f.Doc == nil && !hasPackageDoc(filepath.Dir(path)) {
			t.Errorf("%s: package %s has no package doc comment", path, f.Name.Name)
		}
		for _, decl := range f.Decls {
			switch d := decl.(type) {
			case *ast.FuncDecl:
				if d.Name.IsExported() && d.Doc == nil && receiverExported(d) {
					t.Errorf("%s: %s has no doc comment", fset.Position(d.Pos()), d.Name.Name)
				}
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if s.Name.IsExported() && d.Doc == nil && s.Doc == nil {
							t.Errorf("%s: type %s has no doc comment", fset.Position(s.Pos()), s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && d.Doc == nil && s.Doc == nil {
								t.Errorf("%s: %s has no doc comment", fset.Position(n.Pos()), n.Name)
							}
						}
					}
				}
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
}

func receiverExported(d *ast.FuncDecl) bool {
	if d.Recv == nil || len(d.Recv.List) == 0 {
		return true
	}
	typ := d.Recv.List[0].Type
	if s, ok := typ.(*ast.StarExpr); ok {
		typ = s.X
	}
	if ix, ok := typ.(*ast.IndexExpr); ok {
		typ = ix.X
	}
	id, ok := typ.(*ast.Ident)
	return ok && id.IsExported()
}

var docCache = map[string]bool{}

// hasPackageDoc reports whether some file of the directory has a package
// comment.
func hasPackageDoc(dir string) bool {
	if v, ok := docCache[dir]; ok {
		return v
	}
	found := false
	files, _ := filepath.Glob(filepath.Join(dir, "*.go"))
	for _, p := range files {
		if strings.HasSuffix(p, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(token.NewFileSet(), p, nil, parser.PackageClauseOnly|parser.ParseComments)
		if err == nil && f.Doc != nil {
			found = true
			break
		}
	}
	docCache[dir] = found
	return found
}

// TestREADMEBlockIsReal checks that the block the README shows is the
// code of models/resnet/blocks.go, character for character.
func TestREADMEBlockIsReal(t *testing.T) {
	readme, err := os.ReadFile("README.md")
	if err != nil {
		t.Fatal(err)
	}
	src, err := os.ReadFile("models/resnet/blocks.go")
	if err != nil {
		t.Fatal(err)
	}
	const start = "```go\nfunc (b *BasicBlock) Forward"
	i := strings.Index(string(readme), start)
	if i < 0 {
		t.Fatal("README.md shows no BasicBlock.Forward")
	}
	block := string(readme[i+len("```go\n"):])
	block = block[:strings.Index(block, "```")]
	if !strings.Contains(string(src), block) {
		t.Errorf("README.md's block is not the code of models/resnet/blocks.go:\n%s", block)
	}
}

// TestDocListsEveryPackage checks that the package list of doc.go names
// every package directory of the module (a new package joins the map of
// the house) and names none that does not exist.
func TestDocListsEveryPackage(t *testing.T) {
	f, err := parser.ParseFile(token.NewFileSet(), "doc.go", nil, parser.ParseComments|parser.PackageClauseOnly)
	if err != nil {
		t.Fatal(err)
	}
	doc := f.Doc.Text()
	dirs := map[string]bool{}
	err = filepath.WalkDir(".", func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata") && path != "." {
			return filepath.SkipDir
		}
		if !d.IsDir() && strings.HasSuffix(path, ".go") && !strings.HasSuffix(path, "_test.go") && filepath.Dir(path) != "." {
			dirs[filepath.ToSlash(filepath.Dir(path))] = true
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	// A package is listed when its path appears in the doc as a word of its
	// own (models/resnet may be named in models' line).
	listed := func(dir string) bool {
		for rest := doc; ; {
			i := strings.Index(rest, dir)
			if i < 0 {
				return false
			}
			before, after := byte(' '), byte(' ')
			if i > 0 {
				before = rest[i-1]
			}
			if i+len(dir) < len(rest) {
				after = rest[i+len(dir)]
			}
			if strings.IndexByte(" \t\n,;(", before) >= 0 && strings.IndexByte(" \t\n,;)", after) >= 0 {
				return true
			}
			rest = rest[i+len(dir):]
		}
	}
	for dir := range dirs {
		if !listed(dir) {
			t.Errorf("doc.go's package list does not name %s", dir)
		}
	}
	// The first column of the list's lines must be packages.
	for _, line := range strings.Split(doc, "\n") {
		if !strings.HasPrefix(line, "\t") {
			continue
		}
		name := strings.Fields(line)[0]
		if !dirs[name] {
			t.Errorf("doc.go lists %s, which is not a package directory", name)
		}
	}
}
