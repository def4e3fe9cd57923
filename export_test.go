package sealpost

// CheckSharedRender is checkSharedRender for the tests that get their
// mail sends from the parser, which is outside this package.
var CheckSharedRender = checkSharedRender
