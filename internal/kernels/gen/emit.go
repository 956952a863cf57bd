package main

import (
	"bytes"
	"fmt"
)

// emitter collects the generated assembly (s) and the Go declarations of
// its functions (g).
type emitter struct {
	s, g bytes.Buffer
}

// op writes one instruction line (a tab, the formatted instruction, a
// newline).
func (e *emitter) op(f string, a ...any) { fmt.Fprintf(&e.s, "\t"+f+"\n", a...) }

// text writes assembly text as it is: labels and runs of instructions.
func (e *emitter) text(t string) { e.s.WriteString(t) }

// textf writes formatted assembly text.
func (e *emitter) textf(f string, a ...any) { fmt.Fprintf(&e.s, f, a...) }

// goText writes Go text as it is.
func (e *emitter) goText(t string) { e.g.WriteString(t) }

// gof writes formatted Go text.
func (e *emitter) gof(f string, a ...any) { fmt.Fprintf(&e.g, f, a...) }

// decl declares an assembly function: its Go declaration (no escaping
// pointers) and its TEXT line (ABI0, no frame, frame bytes of arguments).
func (e *emitter) decl(name, args string, frame int) {
	e.gof("\n//go:noescape\nfunc %s(%s)\n", name, args)
	e.textf("\n// func %s(%s)\nTEXT ·%s(SB), NOSPLIT, $0-%d\n", name, args, name, frame)
}

// declLocals declares an assembly function like decl, with a frame of
// locals bytes of its own (at 0(SP) to locals−1(SP)); the assembler then
// adds the stack check that NOSPLIT would leave out.
func (e *emitter) declLocals(name, args string, frame, locals int) {
	e.gof("\n//go:noescape\nfunc %s(%s)\n", name, args)
	e.textf("\n// func %s(%s)\nTEXT ·%s(SB), $%d-%d\n", name, args, name, locals, frame)
}

// acc names accumulator register (pixel p, vector v) of a tile nv vectors
// wide.
func acc(is isa, p, v, nv int) string { return fmt.Sprintf("%s%d", is.reg, p*nv+v) }

// z names AVX-512 register i.
func z(i int) string { return fmt.Sprintf("Z%d", i) }
